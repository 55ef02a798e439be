"""Which output channels can be removed together: the channel dependency graph of a flat Functional model.

Every output channel of a Conv1D/2D/3D or Dense layer is an *atom*. Walking the graph in order, each tensor
carries the atom behind each of its channels: BatchNorm, activations, pooling, padding and Dropout pass the list
on; a depthwise conv repeats it (depth multiplier); Flatten tiles it over the positions it flattens; Concatenate
on the channel axis joins the lists; residual Add / Multiply / Average tie the channels at the same position into
one class (union-find), the way torch-pruning's dependency graph does for PyTorch. A class of atoms is removed as
a whole; classes that reach the model's output, its input, or a layer the walk cannot follow are pinned, with the
reason. Names only, no weights: surgery.py slices the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from edgecompress.graph.nodes import call_sites, graph_nodes
from edgecompress.graph.shapes import prod

PRODUCERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
# Per-channel or channel-blind layers whose output channel i comes from input channel i alone.
PASS_THROUGH = (
    keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
    keras.layers.ELU, keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
    keras.layers.AlphaDropout, keras.layers.Identity, keras.layers.Rescaling,
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D,
)
ELEMENTWISE = (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
               keras.layers.Maximum, keras.layers.Minimum)
# Activations that mix channels: removing a channel changes the others.
MIXING_ACTIVATIONS = ("softmax", "log_softmax")


@dataclass
class Use:
    """One layer reading a tensor: the atom behind each position of its input's channel axis (flattened
    positions for a Dense after Flatten)."""

    layer: str
    input_atoms: np.ndarray


@dataclass
class ChannelGraph:
    """Atoms (producer, channel), their classes, who reads them, and what may not be removed."""

    producers: dict[str, np.ndarray] = field(default_factory=dict)   # layer -> atom id of each output channel
    uses: list[Use] = field(default_factory=list)                     # consumers and per-channel layers
    outputs: dict[str, np.ndarray] = field(default_factory=dict)     # per-channel layers: atoms of their output
    pins: dict[int, str] = field(default_factory=dict)               # atom -> why its class stays
    parent: list[int] = field(default_factory=list)                  # union-find over atom ids
    reasons: dict[str, str] = field(default_factory=dict)            # producer -> why none of it can be pruned

    def new_atoms(self, count: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, atom: int) -> int:
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def union(self, first: np.ndarray, second: np.ndarray) -> None:
        for a, b in zip(first.tolist(), second.tolist()):
            root_a, root_b = self.find(a), self.find(b)
            if root_a != root_b:
                self.parent[root_b] = root_a

    def pin(self, atoms: np.ndarray, reason: str) -> None:
        for atom in atoms.tolist():
            self.pins.setdefault(atom, reason)

    def classes(self, atoms: np.ndarray) -> np.ndarray:
        return np.array([self.find(a) for a in atoms.tolist()], dtype=np.int64)

    def pinned_classes(self) -> dict[int, str]:
        pinned: dict[int, str] = {}
        for atom, reason in self.pins.items():
            pinned.setdefault(self.find(atom), reason)
        return pinned

    def removable(self) -> dict[int, list[tuple[str, int]]]:
        """{class: [(producer, channel), ...]} for every class that may be removed."""
        pinned = self.pinned_classes()
        members: dict[int, list[tuple[str, int]]] = {}
        for name, atoms in self.producers.items():
            for channel, root in enumerate(self.classes(atoms).tolist()):
                if root not in pinned:
                    members.setdefault(root, []).append((name, channel))
        return members

    def unprunable(self) -> dict[str, str]:
        """Producers none of whose channels can be removed, each with its reason."""
        pinned = self.pinned_classes()
        result = dict(self.reasons)
        for name, atoms in self.producers.items():
            roots = self.classes(atoms).tolist()
            if name not in result and all(r in pinned for r in roots):
                result[name] = pinned[roots[0]]
        return result


def channel_graph(model: keras.Model) -> ChannelGraph:
    """The channel dependency graph of a flat Functional model (graph.normalize makes one)."""
    graph, atoms_of = ChannelGraph(), {}
    sites = call_sites(model)
    for tensor in model.inputs:
        atoms_of[id(tensor)] = graph.new_atoms(int(tensor.shape[-1]))
        graph.pin(atoms_of[id(tensor)], "carries the model's input channels")
    for node in sorted(graph_nodes(model), key=_depth_of(model), reverse=True):
        if node.operation is None or node.is_input:
            continue
        shared = len(sites.get(id(node.operation), [])) > 1
        _visit(graph, node, atoms_of, shared)
    for tensor in model.outputs:
        graph.pin(atoms_of[id(tensor)], "reaches the model's output")
    return graph


def _depth_of(model: keras.Model):
    depths = {id(node): depth for depth, nodes in model._nodes_by_depth.items() for node in nodes}
    return lambda node: depths[id(node)]


def _visit(graph: ChannelGraph, node, atoms_of: dict, shared: bool) -> None:
    layer, inputs = node.operation, [atoms_of[id(t)] for t in node.input_tensors]
    outputs = node.outputs
    if len(outputs) != 1 or not inputs:
        _opaque(graph, node, inputs, atoms_of, "has several outputs or no input")
        return
    if shared:
        _opaque(graph, node, inputs, atoms_of, "is shared between call sites")
        return
    atoms = _follow(graph, layer, inputs, node)
    if atoms is None:
        _opaque(graph, node, inputs, atoms_of, "is a layer channel pruning cannot follow")
        return
    atoms_of[id(outputs[0])] = atoms


def _follow(graph: ChannelGraph, layer, inputs: list[np.ndarray], node) -> np.ndarray | None:
    """The atoms of the node's output, or None when the layer mixes channels in a way not followed."""
    first = inputs[0]
    if isinstance(layer, PRODUCERS) and not isinstance(layer, DEPTHWISE + SEPARABLE):
        if getattr(layer, "groups", 1) != 1 or _mixes(layer):
            return None
        graph.uses.append(Use(layer.name, first))
        graph.producers[layer.name] = graph.new_atoms(int(node.outputs[0].shape[-1]))
        return graph.producers[layer.name]
    if isinstance(layer, SEPARABLE):
        graph.uses.append(Use(layer.name, first))
        graph.producers[layer.name] = graph.new_atoms(int(node.outputs[0].shape[-1]))
        return graph.producers[layer.name]
    if isinstance(layer, DEPTHWISE):
        graph.uses.append(Use(layer.name, first))
        graph.outputs[layer.name] = np.repeat(first, layer.depth_multiplier)
        return graph.outputs[layer.name]
    if isinstance(layer, PASS_THROUGH) and not _mixes(layer) and _per_last_axis(layer, node):
        if layer.weights:
            graph.uses.append(Use(layer.name, first))
            graph.outputs[layer.name] = first
        return first
    if isinstance(layer, keras.layers.Flatten):
        return np.tile(first, prod(node.input_tensors[0].shape[1:-1]))
    if isinstance(layer, ELEMENTWISE):
        return _tie(graph, inputs)
    if isinstance(layer, keras.layers.Concatenate):
        rank = len(node.outputs[0].shape)
        if layer.axis in (-1, rank - 1):
            return np.concatenate(inputs)
        return _tie(graph, inputs)
    return None


def _mixes(layer) -> bool:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return name in MIXING_ACTIVATIONS


def _per_last_axis(layer, node) -> bool:
    """BatchNormalization must normalize the channel axis to be sliced with it."""
    if not isinstance(layer, keras.layers.BatchNormalization):
        return True
    rank = len(node.input_tensors[0].shape)
    return layer.axis in (-1, rank - 1, [rank - 1], [-1])


def _tie(graph: ChannelGraph, inputs: list[np.ndarray]) -> np.ndarray | None:
    """Elementwise merge: channel i of every full-width input is one class (width-1 inputs broadcast)."""
    full = [atoms for atoms in inputs if len(atoms) > 1] or inputs
    if any(len(atoms) != len(full[0]) for atoms in full):
        return None
    for other in full[1:]:
        graph.union(full[0], other)
    return full[0]


def _opaque(graph: ChannelGraph, node, inputs: list[np.ndarray], atoms_of: dict, why: str) -> None:
    """A layer the walk does not follow: its inputs' classes and its outputs are pinned."""
    layer = node.operation
    reason = f"feeds {layer.name} ({type(layer).__name__}), which {why}"
    for atoms in inputs:
        graph.pin(atoms, reason)
    for tensor in node.outputs:
        atoms_of[id(tensor)] = graph.new_atoms(int(tensor.shape[-1]) if tensor.shape else 1)
        graph.pin(atoms_of[id(tensor)], f"comes out of {layer.name} ({type(layer).__name__}), which {why}")
    if isinstance(layer, PRODUCERS + SEPARABLE):
        graph.reasons[layer.name] = f"{layer.name} {why}"
