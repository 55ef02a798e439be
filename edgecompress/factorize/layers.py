"""Keras 3 layers of ours, for factors no builtin layer expresses; each lowers to builtin TFLite ops only.

- PortableDepthwiseConv2D: a DepthwiseConv2D that also runs with unequal row/column strides on every CPU kernel.
- AxisDepthwise3D: CP's per-axis depthwise convs for Conv3D, as RESHAPE + DEPTHWISE_CONV_2D x3 + RESHAPE.
- TTMatrixDense: a TT-matrix (t3f format) dense layer: reshapes, one transpose and one matmul per core.
Registered with Keras on import, so saved models load after `import edgecompress`.
"""
from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops

from edgecompress.graph.shapes import conv_out_shape, prod

PACKAGE = "edgecompress"


def equal_strides(strides: Sequence[int]) -> bool:
    return len(set(strides)) <= 1


def same_padding(length: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) zeros TensorFlow adds on one axis for padding='same'."""
    out = -(-length // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def depthwise_any_strides(x, kernel, strides: Sequence[int], padding: str, dilation: Sequence[int]):
    """A 2-D depthwise conv that runs on every TensorFlow CPU kernel, whatever the strides.

    TensorFlow's default DepthwiseConv2dNative supports only equal row and column strides (oneDNN, on by default on
    some x86 CPUs only, hides this). Unequal strides are computed at stride 1 on the input padded as 'same' would
    pad it at the real strides, then subsampled: PAD + DEPTHWISE_CONV_2D + STRIDED_SLICE, all builtin.
    """
    strides, dilation = tuple(strides), tuple(dilation)
    if equal_strides(strides):
        return ops.depthwise_conv(x, kernel, strides=strides, padding=padding, dilation_rate=dilation)
    if padding == "same":
        pads = [same_padding(int(n), int(k), s, d)
                for n, k, s, d in zip(x.shape[1:3], kernel.shape[:2], strides, dilation)]
        x = ops.pad(x, [(0, 0), *pads, (0, 0)])
    y = ops.depthwise_conv(x, kernel, strides=1, padding="valid", dilation_rate=dilation)
    return y[:, ::strides[0], ::strides[1], :]


def depthwise_flops(spatial: Sequence[int | None], kernel_size: Sequence[int], strides: Sequence[int],
                    dilation: Sequence[int], padding: str, channels: int) -> tuple[int, tuple]:
    """(FLOPs, output spatial) of `depthwise_any_strides`: unequal strides pay for the stride-1 positions."""
    out = conv_out_shape(spatial, kernel_size, strides, dilation, padding)
    computed = out
    if not equal_strides(strides):
        spans = [(k - 1) * d + 1 for k, d in zip(kernel_size, dilation)]
        computed = tuple(None if n is None else ((o - 1) * s + 1 if padding == "same" else n - span + 1)
                         for n, o, s, span in zip(spatial, out, strides, spans))
    return 2 * prod(computed) * prod(kernel_size) * channels, out


@keras.saving.register_keras_serializable(package=PACKAGE)
class PortableDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D (depth_multiplier 1) whose unequal strides run on every CPU (see depthwise_any_strides)."""

    def call(self, inputs):
        y = depthwise_any_strides(inputs, self.kernel, self.strides, self.padding, self.dilation_rate)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def count_flops(self, input_shape) -> int:
        flops, _ = depthwise_flops(input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate,
                                   self.padding, input_shape[-1] * self.depth_multiplier)
        return flops


@keras.saving.register_keras_serializable(package=PACKAGE)
class AxisDepthwise3D(keras.layers.Layer):
    """Depthwise conv along depth, then height, then width of a (B, D, H, W, C) tensor, one kernel per axis."""

    def __init__(self, kernel_size: Sequence[int], strides: Sequence[int] = (1, 1, 1),
                 dilation_rate: Sequence[int] = (1, 1, 1), padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.dilation_rate = tuple(dilation_rate)
        self.padding = padding

    def build(self, input_shape):
        channels = input_shape[-1]
        self.axis_kernels = [
            self.add_weight(name=f"axis{i}_kernel", shape=(k, channels), initializer="glorot_uniform")
            for i, k in enumerate(self.kernel_size)
        ]

    def _depthwise(self, x, axis_index: int, layout_axis: int):
        """Depthwise conv with the kernel of `axis_index` laid along dim `layout_axis` (0 or 1) of a 2-D map."""
        k = self.kernel_size[axis_index]
        kernel_shape = (k, 1) if layout_axis == 0 else (1, k)
        kernel = ops.reshape(self.axis_kernels[axis_index], kernel_shape + (-1, 1))
        per_axis = lambda v: (v, 1) if layout_axis == 0 else (1, v)  # noqa: E731
        return depthwise_any_strides(x, kernel, per_axis(self.strides[axis_index]), self.padding,
                                     per_axis(self.dilation_rate[axis_index]))

    def call(self, inputs):
        depth, height, width, channels = inputs.shape[1:]
        x = ops.reshape(inputs, (-1, depth, height * width, channels))
        x = self._depthwise(x, 0, 0)
        out_depth = x.shape[1]
        x = ops.reshape(x, (-1, height, width, channels))
        x = self._depthwise(x, 1, 0)
        x = self._depthwise(x, 2, 1)
        return ops.reshape(x, (-1, out_depth, x.shape[1], x.shape[2], channels))

    def compute_output_shape(self, input_shape):
        spatial = conv_out_shape(input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return (input_shape[0],) + spatial + (input_shape[-1],)

    def count_flops(self, input_shape) -> int:
        return axis_depthwise_flops(input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate,
                                    self.padding, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "dilation_rate": self.dilation_rate, "padding": self.padding}


def axis_depthwise_flops(spatial, kernel_size, strides, dilation, padding: str, channels: int) -> int:
    """FLOPs of one depthwise conv per spatial axis in turn, each a 2-D depthwise_any_strides on a (k, 1) kernel."""
    spatial, flops = list(spatial), 0
    for axis, k in enumerate(kernel_size):
        pair = lambda values, fill=1: (values[axis], fill)  # noqa: E731  the axis laid along rows of a 2-D view
        rest = prod(spatial[:axis] + spatial[axis + 1:])
        step_flops, (out_len, _) = depthwise_flops((spatial[axis], rest), pair(kernel_size), pair(strides),
                                                   pair(dilation), padding, channels)
        spatial[axis] = out_len
        flops += step_flops
    return flops


def ttm_macs_per_row(in_modes: Sequence[int], out_modes: Sequence[int], ranks: Sequence[int]) -> int:
    """Multiply-accumulates of one input row through the TT-matrix cores, in TTMatrixDense's order.

    `ranks` has len(in_modes) + 1 entries with ranks[0] == ranks[-1] == 1.
    """
    macs = 0
    for k, (n, m) in enumerate(zip(in_modes, out_modes)):
        rows = math.prod(in_modes[k + 1:]) * math.prod(out_modes[:k])
        macs += rows * ranks[k] * n * m * ranks[k + 1]
    return macs


@keras.saving.register_keras_serializable(package=PACKAGE)
class TTMatrixDense(keras.layers.Layer):
    """y = activation(x W + b) with W (prod(in_modes) x prod(out_modes)) held as TT-matrix cores.

    Core k has shape (ranks[k], in_modes[k], out_modes[k], ranks[k+1]) as in t3f and tensorly. Works on the
    last axis of any input, so it also replaces a 1x1 conv; `strides` subsample the spatial axes first.
    """

    def __init__(self, in_modes, out_modes, ranks, use_bias=True, activation=None, strides=None, **kwargs):
        super().__init__(**kwargs)
        self.in_modes = tuple(int(v) for v in in_modes)
        self.out_modes = tuple(int(v) for v in out_modes)
        self.ranks = tuple(int(v) for v in ranks)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.strides = tuple(strides) if strides else None

    @property
    def units(self) -> int:
        return math.prod(self.out_modes)

    def build(self, input_shape):
        self.cores = [
            self.add_weight(name=f"core{k}", shape=(self.ranks[k], n, m, self.ranks[k + 1]),
                            initializer="glorot_uniform")
            for k, (n, m) in enumerate(zip(self.in_modes, self.out_modes))
        ]
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None

    def _subsample(self, x):
        if not self.strides or all(s == 1 for s in self.strides):
            return x
        index = (slice(None),) + tuple(slice(None, None, s) for s in self.strides) + (slice(None),)
        return x[index]

    def call(self, inputs):
        x = self._subsample(inputs)
        lead = tuple(x.shape[1:-1])
        # Layout invariant before core k: (n_k, n_k+1..n_d, rows, m_1..m_k-1, r_k), see ttm_macs_per_row.
        data = ops.transpose(ops.reshape(x, (-1, math.prod(self.in_modes))))
        for k, core in enumerate(self.cores):
            n, rank_in = self.in_modes[k], self.ranks[k]
            data = ops.reshape(data, (n, -1, rank_in))
            data = ops.reshape(ops.transpose(data, (1, 2, 0)), (-1, rank_in * n))
            core_matrix = ops.reshape(core, (rank_in * n, -1))
            data = ops.matmul(data, core_matrix)
        y = ops.reshape(data, (-1,) + lead + (self.units,))
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        lead = tuple(input_shape[1:-1])
        if self.strides:
            lead = conv_out_shape(lead, [1] * len(lead), self.strides, [1] * len(lead), "valid")
        return (input_shape[0],) + lead + (self.units,)

    def count_flops(self, input_shape) -> int:
        positions = prod(self.compute_output_shape(input_shape)[1:-1])
        return 2 * positions * ttm_macs_per_row(self.in_modes, self.out_modes, self.ranks)

    def get_config(self):
        return {**super().get_config(), "in_modes": self.in_modes, "out_modes": self.out_modes,
                "ranks": self.ranks, "use_bias": self.use_bias,
                "activation": keras.activations.serialize(self.activation), "strides": self.strides}
