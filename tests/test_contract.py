"""contract.py: saving a model with its contract, atomically."""
import pytest


def test_a_failed_model_save_leaves_the_old_file_whole_and_nothing_else(small_model, contract_model, tmp_path):
    """contract.save_model writes through utils.atomic_write: a contract that cannot be written (here one
    whose to_dict raises) keeps the previous final.keras and leaves no partial file beside it."""
    import json
    import zipfile

    from contract import CONTRACT_MEMBER, Contract, save_model

    path = tmp_path / "final.keras"
    save_model(small_model, path, contract_model[1])

    class Unwritable(Contract):
        def to_dict(self):
            raise ValueError("cannot be written")

    with pytest.raises(ValueError, match="cannot be written"):
        save_model(small_model, path, Unwritable())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.keras"]
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read(CONTRACT_MEMBER))["dataset"] == "synthetic"
