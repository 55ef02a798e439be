"""Describe a model's layers: which are factorization candidates (Conv1D/2D/3D, Dense) and why others are not.

Produces plain `LayerInfo` records; knows nothing about the factorization methods.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np

from edgecompress.graph.accounting import layer_flops
from edgecompress.graph.nodes import call_sites, graph_of

CANDIDATE_KINDS = {
    keras.layers.Conv1D: "conv1d",
    keras.layers.Conv2D: "conv2d",
    keras.layers.Conv3D: "conv3d",
    keras.layers.Dense: "dense",
}

# Layers that have kernels but are not candidates, with the reason (checked before CANDIDATE_KINDS).
EXCLUDED_CLASSES = {
    keras.layers.DepthwiseConv1D: "depthwise conv: already one filter per channel, nothing to factorize",
    keras.layers.DepthwiseConv2D: "depthwise conv: already one filter per channel, nothing to factorize",
    keras.layers.SeparableConv1D: "separable conv: already factorized (depthwise + pointwise)",
    keras.layers.SeparableConv2D: "separable conv: already factorized (depthwise + pointwise)",
    keras.layers.Conv1DTranspose: "transposed conv: not supported; only Conv1D/2D/3D and Dense are",
    keras.layers.Conv2DTranspose: "transposed conv: not supported; only Conv1D/2D/3D and Dense are",
    keras.layers.Conv3DTranspose: "transposed conv: not supported; only Conv1D/2D/3D and Dense are",
}


@dataclass
class LayerInfo:
    """One layer of a model as the front end sees it. Shapes exclude the batch dimension."""

    name: str
    class_name: str
    kind: str | None
    input_shape: tuple | None
    output_shape: tuple | None
    kernel_shape: tuple | None = None
    strides: tuple = ()
    padding: str = "valid"
    dilation: tuple = ()
    activation: str = "linear"
    use_bias: bool = False
    params: int = 0
    flops: int = 0
    reason: str | None = None

    @property
    def is_candidate(self) -> bool:
        return self.kind is not None and self.reason is None

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.kernel_shape[:-2]) if self.kind != "dense" else ()

    @property
    def in_channels(self) -> int:
        return int(self.kernel_shape[-2])

    @property
    def out_channels(self) -> int:
        return int(self.kernel_shape[-1])

    @property
    def is_pointwise(self) -> bool:
        """A dense layer or a conv whose kernel covers one position: a plain matrix."""
        return all(k == 1 for k in self.kernel_size)

    def to_json(self) -> dict:
        return asdict(self)


def call_shapes(layer, nodes: list | None = None) -> list[tuple[tuple, tuple]]:
    """(input_shape, output_shape) with batch, one pair per call site (`nodes`: the model's, default the layer's)."""
    pairs = []
    for node in layer._inbound_nodes if nodes is None else nodes:
        if not node.input_tensors or not node.outputs:
            continue
        pairs.append((tuple(node.input_tensors[0].shape), tuple(node.outputs[0].shape)))
    return pairs


def model_layers(model: keras.Model) -> list:
    """Layers in graph order, skipping InputLayers."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def describe(model: keras.Model) -> list[LayerInfo]:
    sites = call_sites(model)
    return [describe_layer(layer, sites.get(id(layer)) if sites else None) for layer in model_layers(model)]


def describe_layer(layer, nodes: list | None = None) -> LayerInfo:
    """`nodes`: the layer's call sites in its model's graph (default: every call record the layer holds)."""
    sites = call_shapes(layer, nodes)
    in_shape, out_shape = sites[0] if sites else (None, None)
    info = LayerInfo(
        name=layer.name,
        class_name=type(layer).__name__,
        kind=_kind_of(layer),
        input_shape=in_shape[1:] if in_shape else None,
        output_shape=out_shape[1:] if out_shape else None,
        params=int(layer.count_params()) if layer.built else 0,
        flops=sum(layer_flops(layer, i, o) for i, o in sites),
    )
    if hasattr(layer, "kernel") and getattr(layer, "built", False):
        info.kernel_shape = tuple(int(d) for d in layer.kernel.shape)
    if info.kind is not None:
        _fill_candidate_fields(info, layer)
    info.reason = _reason_not_candidate(layer, info, len(sites))
    return info


def _kind_of(layer) -> str | None:
    if any(isinstance(layer, cls) for cls in EXCLUDED_CLASSES):
        return None
    for cls, kind in CANDIDATE_KINDS.items():
        if isinstance(layer, cls):
            return kind
    return None


def _fill_candidate_fields(info: LayerInfo, layer) -> None:
    info.activation = keras.activations.serialize(layer.activation)
    if isinstance(info.activation, dict):
        info.activation = info.activation.get("config", {}).get("name", str(info.activation))
    info.use_bias = bool(layer.use_bias)
    if info.kind != "dense":
        info.strides = tuple(layer.strides)
        info.padding = layer.padding
        info.dilation = tuple(layer.dilation_rate)


def _reason_not_candidate(layer, info: LayerInfo, n_sites: int) -> str | None:
    for cls, reason in EXCLUDED_CLASSES.items():
        if isinstance(layer, cls):
            return reason
    if isinstance(layer, keras.Model) and graph_of(layer) is None:
        return ("nested subclassed model: its layers cannot be read from a graph; compress it on its own, then "
                "use it in this model")
    if isinstance(layer, keras.Model):
        return "nested model: normalize the model first (edgecompress.graph.normalize; the CLI does) to inline it"
    if info.kind is None:
        return "has no weights to factorize" if info.params == 0 else f"{info.class_name}: not a Conv1D/2D/3D or Dense layer"
    return _candidate_problem(layer, info, n_sites)


def _candidate_problem(layer, info: LayerInfo, n_sites: int) -> str | None:
    if not layer.built or info.input_shape is None:
        return "not built: call the model on data (or give it an Input) first"
    if n_sites > 1:
        return f"shared between {n_sites} call sites: replacing it would change every site; left as it is"
    if info.kind == "dense":
        return None
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "channels_first layout: only channels_last is supported; rebuild the model channels_last"
    if getattr(layer, "groups", 1) != 1:
        return f"grouped conv (groups={layer.groups}): only groups=1 is supported"
    if info.padding not in ("same", "valid"):
        return f"padding {info.padding!r}: only 'same' and 'valid' are supported"
    if getattr(layer, "lora_enabled", False):
        return "LoRA-enabled layer: merge the LoRA weights first"
    return None


def layer_weights(layer) -> tuple[np.ndarray, np.ndarray | None]:
    """(kernel, bias or None) of a Conv/Dense layer as numpy arrays."""
    kernel = layer.kernel.numpy()
    return kernel, (layer.bias.numpy() if getattr(layer, "use_bias", False) else None)
