"""An exported .tflite model on a device with neither TensorFlow nor this project: LiteRT, NumPy, Pillow.

    python export.py --model runs/<name>/final.keras --format tflite --output depth.tflite
    python examples/tflite_without_tensorflow.py depth.tflite examples/chelsea.png

The export's serving signature takes uint8 RGB at the size it was exported for and returns metres.
"""
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

model, picture = (sys.argv[1:] + ["depth.tflite", "examples/chelsea.png"][len(sys.argv) - 1:])[:2]
# LiteRT runs on one thread unless told: give it every core.
interpreter = Interpreter(model_path=model, num_threads=os.cpu_count())
depth = interpreter.get_signature_runner("serving_default")  # uint8 RGB -> metres
_, height, width, _ = depth.get_input_details()["images"]["shape"]
image = Image.open(picture).convert("RGB").resize((int(width), int(height)))
metres = depth(images=np.asarray(image)[None])["depth_m"][0]
print(f"depth {metres.shape}: nearest {metres.min():.2f} m, farthest {metres.max():.2f} m")
