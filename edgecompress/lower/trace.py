"""A Keras model as a frozen TensorFlow function with a static batch-1 signature: what both converters read.

Static shapes let the converters fold shape arithmetic (Flatten becomes one RESHAPE, not SHAPE/STRIDED_SLICE/PACK).
"""
from __future__ import annotations

import keras

from edgecompress.errors import ExportError

DEPLOY_BATCH = 1


def input_specs(model: keras.Model, batch_size: int = DEPLOY_BATCH) -> list:
    import tensorflow as tf

    specs = []
    for index, tensor in enumerate(model.inputs):
        shape = tuple(tensor.shape[1:])
        if any(dim is None for dim in shape):
            raise ExportError(f"model {model.name!r}: input {index} has unknown dims {shape}; export needs a fixed "
                              f"input shape: rebuild the model with keras.Input(shape=(...)) of known sizes")
        name = "input" if len(model.inputs) == 1 else f"input_{index}"
        specs.append(tf.TensorSpec((batch_size,) + shape, tensor.dtype, name=name))
    return specs


def inference_function(model: keras.Model, batch_size: int = DEPLOY_BATCH):
    """(tf.function in inference mode, its input signature)."""
    import tensorflow as tf

    specs = input_specs(model, batch_size)

    def serve(*inputs):
        return model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)

    return tf.function(serve, input_signature=specs), specs


def frozen_function(model: keras.Model, batch_size: int = DEPLOY_BATCH):
    """The concrete function with every variable folded into a constant (the TFLite converter's input)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function, _ = inference_function(model, batch_size)
    return convert_variables_to_constants_v2(function.get_concrete_function())
