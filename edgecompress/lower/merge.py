"""Pass: inside each factorized block, merge adjacent linear factors where one layer is cheaper than two, and
collapse a block that costs at least as much as the single layer it stands for (its composed equivalent)."""
from __future__ import annotations

import keras

from edgecompress.graph.accounting import chain_cost
from edgecompress.graph.rebuild import rebuild
from edgecompress.lower.compose import compose
from edgecompress.lower.layout import has_2d_form
from edgecompress.lower.naming import block_original
from edgecompress.lower.passes import PassResult, fresh_copy, input_shape_of, layer_chains


def factor_blocks(model: keras.Model) -> list[list]:
    """Runs of consecutive layers of one factorized block (two or more factors), in graph order."""
    blocks = []
    for chain in layer_chains(model):
        run: list = []
        for layer in chain + [None]:
            original = block_original(layer.name) if layer is not None else None
            if run and original == block_original(run[-1].name):
                run.append(layer)
                continue
            if len(run) > 1:
                blocks.append(run)
            run = [layer] if original else []
    return blocks


def keeps_2d_form(candidate, layers) -> bool:
    """A merge must not create a full CONV_3D out of factors that all run as 2-D convs: LiteRT runs CONV_3D on its
    own kernel (XNNPACK has none), measured 1.6-3x slower than the 2-D factors it had fewer FLOPs than."""
    return has_2d_form(candidate) or not all(has_2d_form(layer) for layer in layers)


def not_costlier(candidate, layers, input_shape) -> bool:
    """One layer instead of `layers`: no more params and no more FLOPs (and one op less either way)."""
    params, flops = chain_cost([candidate], input_shape)
    params_before, flops_before = chain_cost(layers, input_shape)
    return params <= params_before and flops <= flops_before


def _shapes(layers, input_shape) -> list[tuple]:
    shapes = [tuple(input_shape)]
    for layer in layers[:-1]:
        shapes.append(tuple(layer.compute_output_shape(shapes[-1])))
    return shapes


def merge_block(layers: list, input_shape: tuple) -> tuple[list, str]:
    """The block after merging (a list of built layers) and what happened."""
    whole = compose(layers, input_shape, block_original(layers[0].name))
    if not isinstance(whole, str) and not_costlier(whole, layers, input_shape):
        return [whole], "collapsed: the block cost at least as much as the layer it replaced"
    notes, originals = [], list(layers)
    merged = True
    while merged and len(layers) > 1:
        merged = False
        shapes = _shapes(layers, input_shape)
        for i in range(len(layers) - 1):
            pair = layers[i:i + 2]
            candidate = compose(pair, shapes[i], pair[0].name)
            if not isinstance(candidate, str) and keeps_2d_form(candidate, pair) and \
                    not_costlier(candidate, pair, shapes[i]):
                layers = layers[:i] + [candidate] + layers[i + 2:]
                notes.append(f"merged {pair[0].name}+{pair[1].name}")
                merged = True
                break
    # Layers kept as they were get fresh copies: reusing one would give it a second call site (a shared layer).
    return [fresh_copy(layer) if layer in originals else layer for layer in layers], "; ".join(notes)


def merge_factors_pass(model: keras.Model) -> PassResult:
    substitutes, where = {}, []
    for block in factor_blocks(model):
        new_layers, note = merge_block(list(block), input_shape_of(block[0]))
        if note:
            substitutes[block[0].name] = new_layers
            substitutes.update({layer.name: [] for layer in block[1:]})
            where.append(f"{block_original(block[0].name)}: {note}")
    if not substitutes:
        return PassResult(model, False, "every block is cheaper than its composed layer and no adjacent factors "
                                        "merge into a cheaper one")
    return PassResult(rebuild(model, substitutes), True, f"rewrote {len(where)} block(s)", where)
