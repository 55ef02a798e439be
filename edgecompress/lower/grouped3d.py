"""Pass (ONNX): CP's AxisDepthwise3D as three depthwise (grouped) Conv3D ops, one per axis, with no reshapes.

The Keras layer reshapes to 2-D, and every reshape of an NDHWC tensor costs tf2onnx a Transpose pair in NCDHW.
ONNX Conv takes `group`, so a per-axis depthwise 3-D conv is one node. TensorFlow's CPU kernels cannot run a
grouped Conv3D, so this layer exists only to be traced for ONNX export (onnx.fix_conv_groups sets `group`).
"""
from __future__ import annotations

import keras

from edgecompress.factorize.layers import AxisDepthwise3D
from edgecompress.graph.rebuild import rebuild
from edgecompress.graph.shapes import conv_out_shape
from edgecompress.lower.naming import pass_layer_name
from edgecompress.lower.passes import PassResult


@keras.saving.register_keras_serializable(package="edgecompress.lower")
class DepthwiseConv3DForExport(keras.layers.Layer):
    """Depthwise 3-D conv (one kernel per channel) as a grouped tf.nn.conv3d; traced for export, not run."""

    def __init__(self, kernel_size, strides=(1, 1, 1), dilation_rate=(1, 1, 1), padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides = tuple(kernel_size), tuple(strides)
        self.dilation_rate, self.padding = tuple(dilation_rate), padding

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_size + (1, input_shape[-1]))

    def call(self, inputs):
        import tensorflow as tf

        return tf.nn.conv3d(inputs, self.kernel, strides=(1,) + self.strides + (1,), padding=self.padding.upper(),
                            dilations=(1,) + self.dilation_rate + (1,))

    def compute_output_shape(self, input_shape):
        spatial = conv_out_shape(input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return (input_shape[0],) + tuple(spatial) + (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "dilation_rate": self.dilation_rate, "padding": self.padding}


def split_axis_depthwise(layer: AxisDepthwise3D, input_shape: tuple) -> list:
    """Three built per-axis layers equal to `layer`, depth then height then width."""
    parts, shape = [], tuple(input_shape)
    for axis, (tag, kernel) in enumerate(zip("dhw", layer.axis_kernels)):
        only = lambda values: tuple(v if i == axis else 1 for i, v in enumerate(values))  # noqa: E731
        part = DepthwiseConv3DForExport(only(layer.kernel_size), only(layer.strides), only(layer.dilation_rate),
                                        layer.padding, name=pass_layer_name(layer.name, tag))
        part.build(shape)
        part.set_weights([kernel.numpy().reshape(only(layer.kernel_size) + (1, -1))])
        parts.append(part)
        shape = part.compute_output_shape(shape)
    return parts


def grouped_conv3d_pass(model: keras.Model) -> PassResult:
    # tf2onnx infers a wrong output shape for a dilated grouped Conv3D: those keep their 2-D reshaped form.
    targets = [layer for layer in model.layers
               if isinstance(layer, AxisDepthwise3D) and all(d == 1 for d in layer.dilation_rate)]
    if not targets:
        return PassResult(model, False, "no undilated AxisDepthwise3D (CP on Conv3D) layer")
    substitutes = {layer.name: split_axis_depthwise(layer, layer._inbound_nodes[0].input_tensors[0].shape)
                   for layer in targets}
    return PassResult(rebuild(model, substitutes), True, "AxisDepthwise3D as three depthwise Conv3D ops",
                      [layer.name for layer in targets])
