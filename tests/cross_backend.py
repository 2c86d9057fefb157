"""Runs the network, the loss, test.py and evaluate.py under one Keras backend, for tests/test_backends.py.

    KERAS_BACKEND=jax python tests/cross_backend.py DIR

DIR holds what the TensorFlow side wrote: model.keras (a small network with random weights), legacy.h5 (the
same layout as the authors' Keras 2 files), inputs.npz (images, a target with a mask, and TensorFlow's
prediction) and picture.png. This process loads both models, predicts, computes the loss on its own prediction
and on TensorFlow's, saves the network again as DIR/<backend>.keras and writes the arrays to DIR/<backend>.npz;
then runs test.py on picture.png into DIR/<backend>_test/ and evaluate.py on the synthetic rooms of
DENSEDEPTH_CACHE into DIR/<backend>_eval.json. The backend is fixed when Keras is first imported, hence a
process of its own, and one process for all four: each JAX start compiles anew.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import evaluate
from helpers import load_test_script
from loss import depth_loss_function
from model import load_model

test_script = load_test_script()

EVALUATE_ARGS = ["--data", "synthetic:24:8", "--limit", "3", "--input-size", "96x128"]


def main(folder):
    folder = Path(folder)
    backend = keras.backend.backend()
    inputs = np.load(folder / "inputs.npz")
    model = load_model(folder / "model.keras")
    # predict_on_batch runs one compiled function: a JAX CPU run op by op would take minutes.
    prediction = np.asarray(model.predict_on_batch(inputs["images"]))
    legacy = np.asarray(load_model(folder / "legacy.h5").predict_on_batch(inputs["images"]))
    own_loss = np.asarray(keras.ops.convert_to_numpy(depth_loss_function(inputs["target"], prediction)))
    tf_loss = np.asarray(keras.ops.convert_to_numpy(depth_loss_function(inputs["target"], inputs["prediction"])))
    model.save(folder / f"{backend}.keras")
    np.savez(folder / f"{backend}.npz", prediction=prediction, legacy=legacy, own_loss=own_loss, tf_loss=tf_loss)
    test_script.main(["--input", str(folder / "picture.png"), "--model", str(folder / "model.keras"),
                      "--output", str(folder / f"{backend}_test"), "--npy"])
    evaluate.main([*EVALUATE_ARGS, "--model", str(folder / "model.keras"),
                   "--json", str(folder / f"{backend}_eval.json")])
    print(f"{backend}: wrote {folder / backend}.npz and .keras, {backend}_test/ and {backend}_eval.json")


if __name__ == "__main__":
    main(sys.argv[1])
