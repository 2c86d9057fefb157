"""Writes a model as a Keras 2.2.4 whole-model HDF5 file, the layout of the authors' nyu.h5 / kitti.h5.

The released files cannot be downloaded here, so the tests recreate their layout from one of our models:
root attributes keras_version, backend, model_config (a Keras 2 JSON config naming the custom layer
BilinearUpSampling2D and DenseNet layers 'conv1/conv', 'conv1/bn', 'conv1/relu'), and a group
model_weights whose attribute layer_names lists one group per layer, each with weight_names such as
'conv1/conv/kernel:0'. Strings are written as bytes, as h5py 3 reads those files, or as str.
"""
import json

import h5py
import numpy as np

KERAS2_NAMES = {"conv1_conv": "conv1/conv", "conv1_bn": "conv1/bn", "conv1_relu": "conv1/relu"}
KERAS2_CLASSES = {"ResizeToMatch": "BilinearUpSampling2D"}
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def keras2_names(model):
    """{Keras 3 layer name: Keras 2 name}; LeakyReLU layers get Keras 2's automatic names."""
    names, leaky = {}, 0
    for layer in model.layers:
        if layer.__class__.__name__ == "LeakyReLU":
            leaky += 1
            names[layer.name] = f"leaky_re_lu_{leaky}"
        else:
            names[layer.name] = KERAS2_NAMES.get(layer.name, layer.name)
    return names


def _inbound_layer_names(node):
    """Layer names in a Keras 3 serialised node's arguments, in order."""
    found = []

    def walk(item):
        if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
            found.append(item["config"]["keras_history"][0])
        elif isinstance(item, (list, tuple)):
            for sub in item:
                walk(sub)

    walk(node["args"])
    return found


def keras2_config(model, names):
    """A Keras 2 style functional model config for the model's graph."""
    layers = []
    for layer, spec in zip(model.layers, model.get_config()["layers"]):
        class_name = KERAS2_CLASSES.get(spec["class_name"], spec["class_name"])
        config = {"name": names[layer.name]}
        if class_name == "Conv2D":
            config.update(filters=layer.filters, kernel_size=list(layer.kernel_size))
        if class_name == "BilinearUpSampling2D":
            config.update(size=[2, 2], data_format="channels_last")
        if class_name == "LeakyReLU":
            config.update(alpha=0.2)
        inbound = [[[names[n], 0, 0, {}] for n in _inbound_layer_names(node)]
                   for node in spec["inbound_nodes"]]
        layers.append({"name": names[layer.name], "class_name": class_name, "config": config,
                       "inbound_nodes": inbound})
    return {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                              "input_layers": [[names[model.layers[0].name], 0, 0]],
                                              "output_layers": [[names[model.layers[-1].name], 0, 0]]}}


def _weight_names(layer, keras2_name):
    """Keras 2's weight names for a layer, e.g. conv1/conv/kernel:0 or up1_convA/bias:0."""
    if layer.__class__.__name__ == "BatchNormalization":
        suffixes = BN_WEIGHTS
    else:
        suffixes = ("kernel", "bias")[: len(layer.weights)]
    return [f"{keras2_name}/{s}:0" for s in suffixes]


def _text(value, as_bytes):
    return value.encode("utf-8") if as_bytes else value


def write_keras2_h5(model, path, as_bytes=True):
    """Write model in the Keras 2.2.4 whole-model layout (strings as bytes or as str)."""
    names = keras2_names(model)
    config = keras2_config(model, names)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = _text("2.2.4", as_bytes)
        f.attrs["backend"] = _text("tensorflow", as_bytes)
        f.attrs["model_config"] = _text(json.dumps(config), as_bytes)
        group = f.create_group("model_weights")
        layer_names = [names[layer.name] for layer in model.layers]
        group.attrs["layer_names"] = np.array([_text(n, True) for n in layer_names]) if as_bytes else layer_names
        group.attrs["keras_version"] = _text("2.2.4", as_bytes)
        group.attrs["backend"] = _text("tensorflow", as_bytes)
        for layer in model.layers:
            layer_group = group.create_group(names[layer.name])
            weight_names = _weight_names(layer, names[layer.name]) if layer.weights else []
            layer_group.attrs["weight_names"] = (np.array([_text(n, True) for n in weight_names], dtype="S")
                                                 if as_bytes else weight_names)
            for weight_name, value in zip(weight_names, layer.get_weights()):
                layer_group.create_dataset(weight_name, data=value)
