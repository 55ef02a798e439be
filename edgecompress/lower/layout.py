"""Pass (TFLite): run Conv1D and Conv3D factors (and 1-D/3-D pooling) as 2-D ops on a reshaped view, one view per run.

Conv1D on (B, L, C) runs on (B, L, 1, C). A Conv3D whose kernel and stride touch only depth runs on (B, D, H*W, C);
one that leaves depth alone runs on (B*D, H, W, C); a pointwise one on whichever view its neighbours use. So the
factors of a CP/TT/SVD block on Conv3D become CONV_2D / DEPTHWISE_CONV_2D (fused bias and activation, XNNPACK)
with a RESHAPE only where the view changes, instead of CONV_3D plus a separate activation op. MaxPooling3D and
AveragePooling3D, which TFLite has no builtin for, become a 2-D pool over (H, W) then one over depth (both separable).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import ops

from edgecompress.factorize.layers import AxisDepthwise3D, PortableDepthwiseConv2D
from edgecompress.graph.rebuild import rebuild
from edgecompress.graph.shapes import conv_out_shape
from edgecompress.lower.naming import pass_layer_name
from edgecompress.lower.passes import PassResult, input_shape_of, layer_chains


@keras.saving.register_keras_serializable(package="edgecompress.lower")
class SpatialView(keras.layers.Layer):
    """Reshape to `target_shape` with the batch axis free to absorb a spatial axis (e.g. depth)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs):
        return ops.reshape(inputs, (-1,) + self.target_shape)

    def compute_output_shape(self, input_shape):
        return (None,) + self.target_shape

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


POOL_CLASSES = {keras.layers.MaxPooling1D: keras.layers.MaxPooling2D, keras.layers.MaxPooling3D: keras.layers.MaxPooling2D,
                keras.layers.AveragePooling1D: keras.layers.AveragePooling2D,
                keras.layers.AveragePooling3D: keras.layers.AveragePooling2D}


@dataclass
class Step:
    """One 2-D conv or pool to emit: native (1-D/3-D) geometry, its 2-D layer class and arguments, native weights."""

    name: str
    layer_class: type
    arguments: dict
    kernel_size: tuple
    strides: tuple
    dilation: tuple
    padding: str
    weights: list = field(default_factory=list)
    pooling: bool = False

    def views(self) -> tuple[str, ...]:
        if len(self.kernel_size) == 1:
            return ("L",)
        flat = lambda values: all(v == 1 for v in values)  # noqa: E731
        options = []
        if flat(self.kernel_size[:1]) and flat(self.strides[:1]):
            options.append("HW")
        if flat(self.kernel_size[1:]) and flat(self.strides[1:]):
            options.append("D")
        return tuple(options)


def view_shape(view: str, spatial: tuple, channels: int) -> tuple:
    return {"L": lambda: (spatial[0], 1, channels),
            "D": lambda: (spatial[0], spatial[1] * spatial[2], channels),
            "HW": lambda: (spatial[1], spatial[2], channels)}[view]()


def _in_view(values: tuple, view: str) -> tuple:
    """A native per-axis tuple (kernel/stride/dilation) as the 2-D one of `view`."""
    return {"L": (values[0], 1), "D": (values[0], 1), "HW": tuple(values[1:])}[view]


def has_2d_form(layer) -> bool:
    """Whether a Conv3D-family layer runs as 2-D ops here (kernel and stride on depth only, or off depth only)."""
    if isinstance(layer, AxisDepthwise3D):
        return True
    if not isinstance(layer, keras.layers.Conv3D):
        return False
    geometry = Step(layer.name, keras.layers.Conv2D, {}, tuple(layer.kernel_size), tuple(layer.strides),
                    tuple(layer.dilation_rate), layer.padding)
    return bool(geometry.views())


def _conv_steps(layer) -> list[Step]:
    depthwise = isinstance(layer, keras.layers.DepthwiseConv1D)
    layer_class = PortableDepthwiseConv2D if depthwise else keras.layers.Conv2D
    size = {"depth_multiplier": layer.depth_multiplier} if depthwise else {"filters": layer.filters}
    arguments = {**size, "use_bias": layer.use_bias, "activation": layer.activation}
    return [Step(layer.name, layer_class, arguments, tuple(layer.kernel_size), tuple(layer.strides),
                 tuple(layer.dilation_rate), layer.padding, [w.numpy() for w in layer.weights])]


def _axis_depthwise_steps(layer: AxisDepthwise3D) -> list[Step]:
    steps = []
    for axis, (tag, kernel) in enumerate(zip("dhw", layer.axis_kernels)):
        only = lambda values, fill=1: tuple(v if i == axis else fill for i, v in enumerate(values))  # noqa: E731
        native_kernel = kernel.numpy().reshape(only(layer.kernel_size) + (kernel.shape[-1], 1))
        steps.append(Step(pass_layer_name(layer.name, tag), PortableDepthwiseConv2D,
                          {"depth_multiplier": 1, "use_bias": False}, only(layer.kernel_size), only(layer.strides),
                          only(layer.dilation_rate), layer.padding, [native_kernel]))
    return steps


def _pool_steps(layer) -> list[Step]:
    """A 1-D pool as one 2-D pool; a 3-D pool as a pool over (H, W) then one over depth, skipping no-op halves."""
    pool_class = POOL_CLASSES[type(layer)]
    size, strides = tuple(layer.pool_size), tuple(layer.strides)
    if len(size) == 1:
        return [Step(layer.name, pool_class, {}, size, strides, (1,), layer.padding, pooling=True)]
    halves = [("hw", (1,) + size[1:], (1,) + strides[1:]), ("d", size[:1] + (1, 1), strides[:1] + (1, 1))]
    return [Step(pass_layer_name(layer.name, tag), pool_class, {}, part_size, part_strides, (1, 1, 1),
                 layer.padding, pooling=True)
            for tag, part_size, part_strides in halves if max(part_size + part_strides) > 1]


def steps_for(layer, ranks: tuple[int, ...] = (1, 3)) -> list[Step] | None:
    """The 2-D steps a layer becomes, or None when it has no 2-D form here (or its spatial rank is not in `ranks`)."""
    spatial = input_shape_of(layer)[1:-1]
    if any(d is None for d in spatial) or len(spatial) not in ranks:
        return None
    if isinstance(layer, AxisDepthwise3D):
        return _axis_depthwise_steps(layer)
    if type(layer) in POOL_CLASSES and getattr(layer, "data_format", "channels_last") == "channels_last":
        return _pool_steps(layer)
    eligible = (keras.layers.Conv1D, keras.layers.Conv3D, keras.layers.DepthwiseConv1D)
    if not isinstance(layer, eligible) or getattr(layer, "groups", 1) != 1 or layer.padding not in ("same", "valid"):
        return None
    steps = _conv_steps(layer)
    return steps if all(step.views() for step in steps) else None


def choose_views(steps: list[Step]) -> list[str]:
    """Keep the current view while a step allows it; otherwise take the one the next constrained step needs."""
    chosen, current = [], None
    for i, step in enumerate(steps):
        options = step.views()
        if current not in options:
            ahead = next((s.views() for s in steps[i + 1:] if len(s.views()) == 1 and s.views()[0] in options), None)
            current = ahead[0] if ahead else options[0]
        chosen.append(current)
    return chosen


def _strides_in_view(strides: tuple, view: str) -> tuple:
    """The 'L' view's width is 1, so its column stride is free: equal strides run on every depthwise kernel."""
    strides_2d = _in_view(strides, view)
    return (strides_2d[0],) * 2 if view == "L" else strides_2d


def _emit(step: Step, view: str, spatial: tuple, channels: int):
    kernel_2d = _in_view(step.kernel_size, view)
    out_spatial = conv_out_shape(spatial, step.kernel_size, step.strides, step.dilation, step.padding)
    if step.pooling:
        pool = step.layer_class(pool_size=kernel_2d, strides=_strides_in_view(step.strides, view),
                                padding=step.padding, name=step.name)
        return pool, out_spatial, channels
    layer = step.layer_class(kernel_size=kernel_2d, strides=_strides_in_view(step.strides, view),
                             dilation_rate=_in_view(step.dilation, view), padding=step.padding,
                             name=step.name, **step.arguments)
    layer.build((None,) + view_shape(view, spatial, channels))
    kernel, *rest = step.weights
    layer.set_weights([kernel.reshape(kernel_2d + kernel.shape[-2:])] + rest)
    return layer, out_spatial, int(layer.compute_output_shape((None,) + view_shape(view, spatial, channels))[-1])


def lower_run(run: list, steps_by_layer: dict) -> dict[str, list]:
    """Substitutes for one run of eligible layers: views where the layout changes, 2-D convs, the native view back."""
    steps = [step for layer in run for step in steps_by_layer[layer.name]]
    views = iter(choose_views(steps))
    shape = input_shape_of(run[0])
    spatial, channels, current = tuple(shape[1:-1]), int(shape[-1]), None
    substitutes = {}
    for layer in run:
        emitted = []
        for step in steps_by_layer[layer.name]:
            view = next(views)
            if view != current:
                target_shape = view_shape(view, spatial, channels)
                emitted.append(SpatialView(target_shape, name=pass_layer_name(step.name, "view")))
                current = view
            conv, spatial, channels = _emit(step, view, spatial, channels)
            emitted.append(conv)
        substitutes[layer.name] = emitted
    substitutes[run[-1].name].append(SpatialView(spatial + (channels,), name=pass_layer_name(run[-1].name, "native")))
    return substitutes


def eligible_runs(model: keras.Model, ranks: tuple[int, ...]) -> tuple[list[list], dict]:
    runs, steps_by_layer = [], {}
    for chain in layer_chains(model):
        run = []
        for layer in chain + [None]:
            steps = steps_for(layer, ranks) if layer is not None else None
            same_rank = run and steps and len(steps[0].kernel_size) == len(steps_by_layer[run[-1].name][0].kernel_size)
            if steps and (not run or same_rank):
                steps_by_layer[layer.name] = steps
                run.append(layer)
                continue
            if run:
                runs.append(run)
            run = [layer] if steps else []
            if steps:
                steps_by_layer[layer.name] = steps
    return runs, steps_by_layer


def layout_2d_pass(model: keras.Model) -> PassResult:
    """Conv1D and Conv3D runs as 2-D convs (TFLite: CONV_3D fuses neither bias nor activation, XNNPACK skips it)."""
    return _lower_layouts(model, (1, 3))


def conv1d_layout_pass(model: keras.Model) -> PassResult:
    """Conv1D runs only (ONNX: 3-D views would cost Transposes; a 1-D view lets the Conv take its bias)."""
    return _lower_layouts(model, (1,))


def _lower_layouts(model: keras.Model, ranks: tuple[int, ...]) -> PassResult:
    runs, steps_by_layer = eligible_runs(model, ranks)
    if not runs:
        return PassResult(model, False, "no Conv1D/Conv3D layer with a 2-D form (static shape, kernel and stride "
                                        "on depth only or off depth only)")
    substitutes = {}
    for run in runs:
        substitutes.update(lower_run(run, steps_by_layer))
    where = [f"{run[0].name}..{run[-1].name}" if len(run) > 1 else run[0].name for run in runs]
    return PassResult(rebuild(model, substitutes), True, f"{len(runs)} run(s) of Conv1D/Conv3D layers as 2-D convs",
                      where)
