"""The network: size, shapes at any input size, decoder structure, saving and loading (ours and legacy)."""
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras2_h5 import write_keras2_h5
from legacy import legacy_architecture
from loss import depth_loss_function
from model import BLOCK_NAMES, ResizeToMatch, create_model, load_model, parameter_counts
from utils import InputError


@pytest.mark.slow  # the paper's full-size network
@pytest.mark.parametrize("encoder, width, trainable_m, total_m", [
    ("densenet169", 1.0, 42.66, 42.82),   # the paper's network
    ("densenet169", 0.5, 21.37, 21.52),   # the reference code's default decoder
    ("densenet201", 1.0, 57.81, 58.04),
    ("densenet201", 0.5, 29.69, 29.92),
])
def test_parameter_counts(encoder, width, trainable_m, total_m):
    trainable, total = parameter_counts(create_model(encoder, weights=None, decoder_width=width))
    assert round(trainable / 1e6, 2) == trainable_m
    assert round(total / 1e6, 2) == total_m


@pytest.mark.slow  # the paper's full-size network
def test_full_width_decoder_filters(full_model):
    filters = [full_model.get_layer(n).filters for n in ("conv2", "up1_convA", "up2_convA", "up3_convA",
                                                          "up4_convA", "conv3")]
    assert filters == [1664, 832, 416, 208, 104, 1]


@pytest.mark.slow  # the paper's full-size network
@pytest.mark.parametrize("height, width, out_hw", [(480, 640, (240, 320)), (250, 333, (125, 167)),
                                                   (64, 64, (32, 32))])
def test_output_is_half_the_input(full_model, height, width, out_hw):
    out = full_model(np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32))
    assert tuple(out.shape) == (1, *out_hw, 1)
    assert np.all(np.isfinite(out))


@pytest.mark.slow  # the paper's full-size network
def test_one_leaky_relu_per_block_after_conv_b_and_no_batchnorm_in_the_decoder(full_model):
    """The paper's appendix table: each convB, and only convB, is followed by a LeakyReLU(0.2)."""
    for block in BLOCK_NAMES:
        act = full_model.get_layer(f"{block}_convB_leakyrelu")
        assert isinstance(act, keras.layers.LeakyReLU)
        assert act.negative_slope == pytest.approx(0.2)
        assert act.input is full_model.get_layer(f"{block}_convB").output
        assert full_model.get_layer(f"{block}_convB").input is full_model.get_layer(f"{block}_convA").output
    start = full_model.layers.index(full_model.get_layer("conv2"))
    decoder = full_model.layers[start:]
    assert len(decoder) == 1 + 4 * 5 + 1
    assert not [layer for layer in decoder if isinstance(layer, keras.layers.BatchNormalization)]
    leaky = [layer for layer in full_model.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert len(leaky) == 4


def test_leaky_relu_layout_is_configurable():
    """The default is the paper's; the authors' later code (--recipe reference) has one after convA too."""
    default = create_model("tiny", weights=None)
    names = [layer.name for layer in default.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert names == [f"{b}_convB_leakyrelu" for b in BLOCK_NAMES]
    both = create_model("tiny", weights=None, leaky_relu_after=("convA", "convB"))
    names = [layer.name for layer in both.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert names == [f"{b}_{c}_leakyrelu" for b in BLOCK_NAMES for c in ("convA", "convB")]


def test_resize_layer_matches_skip_size_and_is_bilinear():
    x = np.array([0.0, 1.0], np.float32).reshape(1, 1, 2, 1)
    skip = np.zeros((1, 2, 4, 5), np.float32)
    half_pixel = np.asarray(ResizeToMatch()(x, skip))[0, ..., 0]
    np.testing.assert_allclose(half_pixel, [[0, 0.25, 0.75, 1]] * 2, atol=1e-6)  # TensorFlow 2's resize
    corners = np.asarray(ResizeToMatch("align_corners")(x, skip))[0, ..., 0]
    np.testing.assert_allclose(corners, [[0, 1 / 3, 2 / 3, 1]] * 2, atol=1e-6)  # the authors' align_corners=True
    legacy = np.asarray(ResizeToMatch("tf1_legacy")(x, skip))[0, ..., 0]
    np.testing.assert_allclose(legacy, [[0, 0.5, 1, 1]] * 2, atol=1e-6)          # TensorFlow 1's default
    odd = np.asarray(ResizeToMatch()(x, np.zeros((1, 3, 3, 1), np.float32)))
    assert odd.shape == (1, 3, 3, 1)


@pytest.mark.slow  # a training run (tens of seconds): the full suite runs it
def test_compiled_train_step_accepts_several_input_sizes():
    keras.utils.set_random_seed(1)
    net = create_model("tiny", weights=None)
    net.compile(optimizer=keras.optimizers.Adam(1e-4), loss=depth_loss_function)
    rng = np.random.default_rng(0)
    for h, w in ((64, 64), (96, 128)):
        x = rng.random((2, h, w, 3), dtype=np.float32)
        y = rng.uniform(1, 100, (2, h // 2, w // 2, 1)).astype(np.float32)
        loss = net.train_on_batch(x, y)
        assert np.isfinite(loss)


def test_imagenet_normalization_option_changes_the_input():
    keras.utils.set_random_seed(2)
    plain = create_model("tiny", weights=None)
    normed = create_model("tiny", weights=None, imagenet_normalization=True)
    assert parameter_counts(plain) == parameter_counts(normed)
    probe = keras.Model(normed.input, normed.get_layer("imagenet_norm").output)
    out = np.asarray(probe(np.full((1, 32, 32, 3), 0.5, np.float32)))[0, 0, 0]
    np.testing.assert_allclose(out, (0.5 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225],
                               rtol=1e-5)


def test_tiny_encoder_is_a_small_densenet_with_the_papers_skip_connections(tmp_path):
    """The tiny encoder (tests and --smoke) feeds the decoder from the same four layers as DenseNet-169, at
    the same fractions of the input size, and has no pretrained weights to offer."""
    from model import ENCODER_CHANNELS, SKIP_LAYERS, encoder_of

    net = create_model("tiny", weights=None)
    probe = keras.Model(net.input, [net.get_layer(name).output for name in (*SKIP_LAYERS, "relu")])
    shapes = [tuple(out.shape[1:3]) for out in probe(np.zeros((1, 64, 96, 3), np.float32))]
    assert shapes == [(4, 6), (8, 12), (16, 24), (32, 48), (2, 3)]  # 1/16, 1/8, 1/4, 1/2; the output 1/32
    assert net.get_layer("relu").output.shape[-1] == ENCODER_CHANNELS["tiny"] == net.get_layer("conv2").filters
    assert encoder_of(layer.name for layer in net.layers) == "tiny"
    assert parameter_counts(net)[1] < 200_000  # against DenseNet-169's 42.8M
    weights = tmp_path / "encoder_weights.h5"  # any weights: the tiny encoder has none to load, refused offline
    weights.write_bytes(b"")
    with pytest.raises(InputError, match="tiny encoder has no pretrained weights"):
        create_model("tiny", weights=str(weights))


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(3)
    net = create_model("tiny", weights=None)
    x = np.random.default_rng(0).random((1, 64, 96, 3), dtype=np.float32)
    net.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(x), net(x), atol=1e-5)


def test_resize_conventions_equal_tensorflows_own_resizes_and_survive_saving():
    rng = np.random.default_rng(3)
    x = rng.random((2, 5, 7, 3), dtype=np.float32)
    skip = np.zeros((2, 10, 14, 1), np.float32)
    corners = tf.compat.v1.image.resize(x, (10, 14), method="bilinear", align_corners=True)
    np.testing.assert_allclose(ResizeToMatch("align_corners")(x, skip), corners, atol=1e-6)
    np.testing.assert_allclose(ResizeToMatch("half_pixel")(x, skip), tf.image.resize(x, (10, 14)), atol=1e-6)
    layer = ResizeToMatch.from_config(ResizeToMatch("align_corners", name="up").get_config())
    assert layer.convention == "align_corners"
    assert ResizeToMatch(half_pixel_centers=True).convention == "half_pixel"  # files saved before the names
    with pytest.raises(InputError, match="unknown up-sampling convention 'corners'"):
        ResizeToMatch("corners")


@pytest.fixture(scope="module")
def legacy_model():
    """The paper's network as the authors' Keras 2 / TensorFlow 1 files hold it (align_corners resize)."""
    keras.utils.set_random_seed(7)
    return create_model(weights=None, upsampling="align_corners")


@pytest.mark.slow  # the paper's full-size network
@pytest.mark.parametrize("as_bytes", [True, False])
def test_legacy_h5_full_width_round_trip(legacy_model, tmp_path, as_bytes):
    path = tmp_path / "nyu.h5"
    write_keras2_h5(legacy_model, path, as_bytes=as_bytes)
    with h5py.File(path) as f:  # the layout of the released files
        assert "conv1" in f["model_weights"] and "conv1/conv/kernel:0" in f["model_weights/conv1/conv"]
    loaded = load_model(path)
    assert loaded.get_layer("conv2").filters == 1664
    x = np.random.default_rng(1).random((1, 96, 128, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(x), legacy_model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # the paper's full-size network
def test_legacy_network_upsamples_with_align_corners(legacy_model, tmp_path):
    """Every decoder level of a loaded authors' file resizes as resize_images(align_corners=True) did."""
    write_keras2_h5(legacy_model, tmp_path / "nyu.h5")
    loaded = load_model(tmp_path / "nyu.h5")
    layers = [layer for layer in loaded.layers if isinstance(layer, ResizeToMatch)]
    assert [layer.convention for layer in layers] == ["align_corners"] * 4
    known = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 3, 4, 2) ** 1.5
    skip = np.zeros((1, 6, 8, 1), np.float32)
    expected = tf.compat.v1.image.resize_bilinear(known, (6, 8), align_corners=True)
    np.testing.assert_allclose(layers[0](known, skip), expected, rtol=1e-6, atol=1e-5)
    half_pixel = tf.image.resize(known, (6, 8))
    assert np.max(np.abs(np.asarray(layers[0](known, skip)) - half_pixel)) > 0.5
    # The whole network: the same weights with TF 2's half-pixel resize give a measurably different map.
    as_tf2 = create_model(weights=None, upsampling="half_pixel")
    as_tf2.set_weights(loaded.get_weights())
    x = np.random.default_rng(8).random((1, 64, 96, 3), dtype=np.float32)
    difference = np.abs(np.asarray(loaded(x)) - np.asarray(as_tf2(x)))
    assert difference.mean() > 1e-3 * np.abs(np.asarray(loaded(x))).mean()


def test_legacy_h5_half_width_single_leaky_relu(tmp_path):
    """kitti.h5's reported layout: one LeakyReLU per block; width and layout come from the file."""
    keras.utils.set_random_seed(4)
    source = create_model("tiny", weights=None, decoder_width=0.5, leaky_relu_after=("convB",),
                          upsampling="align_corners")
    write_keras2_h5(source, tmp_path / "kitti.h5")
    loaded = load_model(tmp_path / "kitti.h5")
    assert loaded.get_layer("conv2").filters == 32
    assert [layer.name for layer in loaded.layers if isinstance(layer, keras.layers.LeakyReLU)] == \
        [f"{b}_convB_leakyrelu" for b in BLOCK_NAMES]
    x = np.random.default_rng(2).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(x), source(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # a DenseNet-201
def test_legacy_architecture_detects_densenet201(tmp_path):
    keras.utils.set_random_seed(5)
    source = create_model("densenet201", weights=None, decoder_width=0.25, leaky_relu_after=("convA", "convB"))
    write_keras2_h5(source, tmp_path / "m201.h5")
    with h5py.File(tmp_path / "m201.h5") as f:
        import json
        arch = legacy_architecture(json.loads(f.attrs["model_config"]))
    assert arch == {"encoder": "densenet201", "decoder_width": 0.25, "leaky_relu_after": ("convA", "convB"),
                    "upsampling": "align_corners"}


def test_mismatched_legacy_file_names_the_first_bad_layer(tmp_path):
    keras.utils.set_random_seed(6)
    source = create_model("tiny", weights=None)
    path = tmp_path / "bad.h5"
    write_keras2_h5(source, path)
    with h5py.File(path, "a") as f:
        group = f["model_weights/up2_convB"]
        del group["up2_convB/kernel:0"]
        group.create_dataset("up2_convB/kernel:0", data=np.zeros((1, 1, 26, 26), np.float32))
    with pytest.raises(InputError, match=r"bad\.h5: layer 'up2_convB' does not match"):
        load_model(path)


def rewired(path, edit):
    """The Keras 2 file at path with its model_config changed by edit(layers by name), in place."""
    import json

    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        edit({layer["name"]: layer for layer in config["config"]["layers"]})
        f.attrs["model_config"] = json.dumps(config).encode()
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda layers: layers["up2_concat"]["inbound_nodes"][0].reverse(),
     r"'up2_concat' takes \['pool2_pool', 'up2_upsampling2d'\].*up-sampled first, skip connection second"),
    (lambda layers: layers["leaky_re_lu_3"]["config"].update(alpha=0.3), r"after 'up3_convB' has slope 0.3"),
    (lambda layers: layers["conv2"]["config"].update(activation="relu"), r"'conv2' has a built-in relu"),
    (lambda layers: layers["up1_convA"]["inbound_nodes"][0].__setitem__(0, ["pool3_pool", 0, 0, {}]),
     r"'up1_convA' takes \['pool3_pool'\]"),
])
def test_legacy_loader_refuses_a_file_wired_otherwise(tmp_path, edit, message):
    """A reversed concatenation has the same weight shapes and would load silently wrong: the wiring, the
    activations and the LeakyReLU slope are compared with the rebuilt network, in one line."""
    source = create_model("tiny", weights=None, upsampling="align_corners")
    path = tmp_path / "nyu.h5"
    write_keras2_h5(source, path)
    load_model(path)  # as written, it loads
    with pytest.raises(InputError, match=message) as info:
        load_model(rewired(path, edit))
    assert "\n" not in str(info.value) and "nyu.h5" in str(info.value)


def test_legacy_loader_refuses_an_activation_after_conv2(tmp_path):
    source = create_model("tiny", weights=None, upsampling="align_corners")
    path = tmp_path / "nyu.h5"
    write_keras2_h5(source, path)

    def add_activation(layers):
        layers["conv2_act"] = {"name": "conv2_act", "class_name": "Activation", "config": {"activation": "relu"},
                               "inbound_nodes": [[["conv2", 0, 0, {}]]]}
        layers["up1_upsampling2d"]["inbound_nodes"][0][0] = ["conv2_act", 0, 0, {}]

    import json

    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        layers = {layer["name"]: layer for layer in config["config"]["layers"]}
        add_activation(layers)
        config["config"]["layers"].append(layers["conv2_act"])
        f.attrs["model_config"] = json.dumps(config).encode()
    with pytest.raises(InputError, match="'conv2' is followed by a Activation"):
        load_model(path)
