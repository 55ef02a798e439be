"""Which passes run before each converter, in order (folding first, merging next, layout last)."""
from __future__ import annotations

from edgecompress.lower.dilation import undilate_conv3d_pass
from edgecompress.lower.fold import fold_batchnorm_pass, fuse_activation_pass
from edgecompress.lower.grouped3d import grouped_conv3d_pass
from edgecompress.lower.layout import conv1d_layout_pass, layout_2d_pass
from edgecompress.lower.merge import merge_factors_pass
from edgecompress.lower.normalization import normalization_pass

PASSES = {
    "tflite": (fold_batchnorm_pass, fuse_activation_pass, merge_factors_pass, layout_2d_pass, undilate_conv3d_pass),
    # ONNX convs are 1-D/2-D/3-D natively; 3-D views would cost Transposes, but a Conv1D view lets Conv take the
    # bias (tf2onnx's Unsqueeze/Conv/Squeeze leaves a separate Add).
    "onnx": (normalization_pass, fold_batchnorm_pass, fuse_activation_pass, merge_factors_pass, conv1d_layout_pass,
             grouped_conv3d_pass),
}
