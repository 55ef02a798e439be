"""CP (CANDECOMP/PARAFAC) of a conv kernel: 1x1 (Cin->R), one depthwise conv per spatial axis, 1x1 (R->Cout).

The search runs CP-ALS for a few iterations per rank, warm-started from the nearest larger rank already computed
(its strongest components) or from an SVD init; the final model refines the chosen rank for CP_MAX_ITERATIONS
more iterations from there. Each component's scale is spread evenly over its factors (same kernel, better
conditioned for fine-tuning; its effect on fine-tuned top-1 is not established: see the ResNet-20 note in
bench/results/compress_table.md).

A strided Conv2D gets one depthwise conv whose kernel is the outer product of its two axis factors instead: split,
each axis conv would stride one axis only, which TensorFlow's default CPU kernel cannot run (oneDNN hides it), and
for a 3x3 kernel at stride 2 the merged conv costs the same FLOPs in one op instead of two.
Conv3D has no depthwise builtin, so its per-axis depthwise convs run in one layer of ours that reshapes
to 2-D and uses DEPTHWISE_CONV_2D (see layers.AxisDepthwise3D).
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import tensorly
from tensorly.decomposition import parafac

from edgecompress.factorize import blocks
from edgecompress.factorize.base import SEARCH_ITERATIONS, Cost, Factors, Method, register, replaced
from edgecompress.factorize.layers import AxisDepthwise3D, PortableDepthwiseConv2D, axis_depthwise_flops

CP_MAX_ITERATIONS = 25  # bounded ALS: the DSE decomposes many (layer, rank) pairs


def mttkrp_by_contraction(tensor: np.ndarray, cp_tensor, mode: int) -> np.ndarray:
    """unfold(tensor, mode) @ khatri_rao(factors without `mode`), without forming the Khatri-Rao product.

    tensorly's default forms it: for a 3x3x256x256 kernel and a spatial mode that is a (65536 x R) matrix per
    ALS step. Contracting the largest other mode first (one GEMM) and the rest one by one costs the same GEMM
    and no big temporary: parafac at rank 500 on 3x3x256x256, 10 iterations, 1 BLAS thread, 21.5 s -> 1.1 s,
    same factors to 1e-14 (measured; tensorly documents this function as the MTTKRP extension point).
    """
    weights, factors = cp_tensor
    others = sorted((m for m in range(tensor.ndim) if m != mode), key=lambda m: -tensor.shape[m])
    result = np.tensordot(tensor, factors[others[0]], axes=([others[0]], [0]))
    axes = [m for m in range(tensor.ndim) if m != others[0]]
    for m in others[1:]:
        position = axes.index(m)
        result = np.einsum("...ir,ir->...r", np.moveaxis(result, position, -2), factors[m])
        axes.pop(position)
    return result * weights if weights is not None else result


tensorly.tenalg.register_backend_method("unfolding_dot_khatri_rao", mttkrp_by_contraction)
tensorly.tenalg.use_dynamic_dispatch()


def exact_cp(tensor: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """A rank-(size / largest mode) CP that equals the tensor exactly: one term per index of the other modes."""
    largest = int(np.argmax(tensor.shape))
    others = [m for m in range(tensor.ndim) if m != largest]
    rank = math.prod(tensor.shape[m] for m in others)
    moved = np.moveaxis(tensor, largest, -1).reshape(rank, tensor.shape[largest])
    indices = np.unravel_index(np.arange(rank), [tensor.shape[m] for m in others])
    factors: list[np.ndarray] = [None] * tensor.ndim
    for mode, index in zip(others, indices):
        factors[mode] = np.eye(tensor.shape[mode])[index].T
    factors[largest] = moved.T
    return np.ones(rank), factors


@register("cp")
class CP(Method):
    kinds = frozenset({"conv1d", "conv2d", "conv3d"})
    spatial_kernels_only = True
    whitens_inputs = True
    # Its R thin maps between depthwise factors carry int8 error that the R -> Cout mix amplifies: on edgecnn at
    # latency=0.35@host, CP plans agree with fp32 on 96.5% of int8 top-1, Tucker 99.4%, TT 99.6%
    # (bench/results/int8_methods.md).
    int8_fragile = True

    def full_rank(self, layer):
        modes = tuple(layer.kernel_shape)
        return (math.prod(modes) // max(modes),)

    def search_work(self, layer, rank) -> float:
        """One ALS iteration is one MTTKRP per mode, each a GEMM of the kernel's size x rank."""
        (rank_value,) = self.resolve(layer, rank)
        return float(SEARCH_ITERATIONS * len(layer.kernel_shape) * math.prod(layer.kernel_shape) * rank_value)

    def shape_problem(self, layer):
        static = all(d is not None for d in layer.input_shape[:-1])
        if layer.kind == "conv3d" and not static:
            return "CP on Conv3D needs static spatial dims (it reshapes to 2-D); give the model a fixed input shape"
        if layer.kind == "conv2d" and len(set(layer.strides)) > 1 and layer.padding == "same" and not static:
            return "CP on a Conv2D with unequal strides needs static spatial dims; give the model a fixed input shape"
        return None

    def cost(self, layer, rank) -> Cost:
        (rank_value,) = self.resolve(layer, rank)
        chain = blocks.CostChain(layer)
        chain.pointwise(layer, layer.in_channels, rank_value)
        if layer.kind == "conv3d":
            flops = axis_depthwise_flops(chain.spatial, layer.kernel_size, layer.strides, layer.dilation,
                                         layer.padding, rank_value)
            chain.add(sum(layer.kernel_size) * rank_value, flops)
            chain.spatial = layer.output_shape[:-1]
        elif _merged(layer):
            chain.depthwise(layer.kernel_size, rank_value, layer.strides, layer.dilation, layer.padding)
        else:
            for axis in range(len(layer.kernel_size)):
                chain.depthwise(blocks.axis_only(layer.kernel_size, axis), rank_value,
                                blocks.axis_only(layer.strides, axis), blocks.axis_only(layer.dilation, axis),
                                layer.padding)
        chain.pointwise(layer, rank_value, layer.out_channels, bias=layer.use_bias)
        return chain.cost()

    def decompose(self, layer, kernel, bias, rank) -> Factors:
        (rank_value,) = self.resolve(layer, rank)
        if rank_value == self.full_rank(layer)[0]:
            weights, factors = exact_cp(kernel.astype(np.float64))
        else:
            with warnings.catch_warnings():  # SVD init warns when the rank exceeds a mode's size
                warnings.simplefilter("ignore", UserWarning)
                weights, factors = parafac(kernel.astype(np.float64), rank=rank_value, init="svd",
                                           n_iter_max=CP_MAX_ITERATIONS, tol=1e-7, random_state=0)
        *spatial, f_in, f_out = factors
        arrays = {"in": f_in, "out": f_out * weights, **{f"axis{i}": f for i, f in enumerate(spatial)}}
        return Factors(self.name, (rank_value,), arrays, bias)

    def search_factors(self, layer, kernel, bias, rank, state) -> Factors:
        (rank_value,) = self.resolve(layer, rank)
        iterations = state.get("search_iterations", SEARCH_ITERATIONS)
        return self._warm_als(kernel, bias, rank_value, iterations, state, refine=False)

    def final_factors(self, layer, kernel, bias, rank, state) -> Factors:
        (rank_value,) = self.resolve(layer, rank)
        return self._warm_als(kernel, bias, rank_value, CP_MAX_ITERATIONS, state, refine=True)

    def map_input_channels(self, factors, back):
        return replaced(factors, **{"in": back @ factors.arrays["in"]})

    def output_factor(self, factors):
        return factors.arrays["out"].T

    def with_output_factor(self, factors, matrix, bias):
        return replaced(factors, bias, out=matrix.T)

    def kernel_from_factors(self, layer, factors):
        """Sum of rank-1 terms as one GEMM: (k..., Cin, R) @ (R, Cout); tensorly's cp_to_tensor would form a
        (k...Cout, R) Khatri-Rao product first (1.8 s per call on a 3x3x256x256 kernel, measured)."""
        arrays = factors.arrays
        axes = [arrays[f"axis{i}"] for i in range(len(layer.kernel_size))]
        spatial = functools.reduce(lambda acc, f: acc[..., None, :] * f, axes, np.ones(arrays["in"].shape[1]))
        return (spatial[..., None, :] * arrays["in"]) @ arrays["out"].T

    def rank_from_unfoldings(self, layer, per_unfolding):
        return (int(max(per_unfolding)),)

    def _warm_als(self, kernel, bias, rank_value: int, iterations: int, state: dict, refine: bool) -> Factors:
        computed = state.setdefault("computed", {})  # rank -> (weights, factors) of the search's ALS
        if refine or rank_value not in computed:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tensorly warns when rank exceeds a mode's size at SVD init
                cp = parafac(kernel, rank=rank_value, init=_warm_start(computed, rank_value),
                             n_iter_max=iterations, tol=1e-7, random_state=0)
            if not refine:
                computed[rank_value] = cp
        else:
            cp = computed[rank_value]
        weights, factors = cp
        *spatial, f_in, f_out = balanced_cp(weights, factors)
        arrays = {"in": f_in, "out": f_out, **{f"axis{i}": f for i, f in enumerate(spatial)}}
        return Factors(self.name, (rank_value,), arrays, bias)

    def build(self, layer, factors):
        (rank_value,) = factors.rank
        arrays = factors.arrays
        name = lambda i: blocks.block_name(layer, self.name, i)  # noqa: E731
        axis_kernels = [arrays[f"axis{i}"] for i in range(len(layer.kernel_size))]
        parts = [(blocks.pointwise(layer, name(0), rank_value), [blocks.pointwise_kernel(layer, arrays["in"])])]
        parts += self._depthwise_parts(layer, axis_kernels, name)
        last = blocks.pointwise(layer, name(len(parts)), layer.out_channels, **blocks.last_factor_args(layer))
        parts.append((last, blocks.with_bias([blocks.pointwise_kernel(layer, arrays["out"].T)], factors.bias)))
        return blocks.assemble(parts, layer.input_shape)

    def _depthwise_parts(self, layer, axis_kernels, name):
        if layer.kind == "conv3d":
            depthwise = AxisDepthwise3D(layer.kernel_size, layer.strides, layer.dilation, layer.padding, name=name(1))
            return [(depthwise, list(axis_kernels))]
        if _merged(layer):
            outer = np.einsum("hr,wr->hwr", *axis_kernels)
            depthwise = PortableDepthwiseConv2D(kernel_size=layer.kernel_size, strides=layer.strides,
                                                dilation_rate=layer.dilation, padding=layer.padding,
                                                use_bias=False, name=name(1))
            return [(depthwise, [outer[..., None]])]
        parts = []
        depthwise_cls = blocks.DEPTHWISE_CLASSES[layer.kind]
        for axis, axis_kernel in enumerate(axis_kernels):
            kernel_size = blocks.axis_only(layer.kernel_size, axis)
            depthwise = depthwise_cls(
                kernel_size=kernel_size, strides=blocks.axis_only(layer.strides, axis),
                dilation_rate=blocks.axis_only(layer.dilation, axis), padding=layer.padding,
                use_bias=False, name=name(axis + 1),
            )
            parts.append((depthwise, [axis_kernel.reshape(kernel_size + (axis_kernel.shape[1], 1))]))
        return parts


def _warm_start(computed: dict, rank_value: int):
    """The strongest components of the nearest computed rank >= rank_value, else tensorly's SVD init."""
    larger = sorted(r for r in computed if r >= rank_value)
    if not larger:
        return "svd"
    weights, factors = computed[larger[0]]
    strength = np.abs(weights) * np.prod([np.linalg.norm(f, axis=0) for f in factors], axis=0)
    keep = np.argsort(strength)[::-1][:rank_value]
    return tensorly.cp_tensor.CPTensor((weights[keep], [f[:, keep] for f in factors]))


def balanced_cp(weights: np.ndarray, factors: list[np.ndarray]) -> list[np.ndarray]:
    """Factors of the same CP tensor with every component's scale shared equally by its factors."""
    norms = np.stack([np.linalg.norm(f, axis=0) for f in factors])
    norms = np.where(norms == 0, 1.0, norms)
    share = (np.abs(weights) * np.prod(norms, axis=0)) ** (1.0 / len(factors))
    signed = [f / n * share for f, n in zip(factors, norms)]
    signed[-1] = signed[-1] * np.sign(np.where(weights == 0, 1.0, weights))
    return signed


def _merged(layer) -> bool:
    """A strided Conv2D: one depthwise conv with the outer-product kernel (see the module docstring)."""
    return layer.kind == "conv2d" and any(s > 1 for s in layer.strides)
