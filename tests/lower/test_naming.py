"""Lowered layer names and TF/TFLite/ONNX op names trace back to the user's layer."""
from edgecompress.lower.naming import block_original, layer_in_op_name, original_name, pass_layer_name


def test_block_factors_and_pass_layers_trace_to_the_original():
    assert block_original("conv2_tucker_1") == "conv2"
    assert block_original("conv2_unknownmethod_1") is None and block_original("dense_1") is None
    assert original_name(pass_layer_name("conv2_cp_1", "view")) == "conv2"
    assert original_name("flatten") == "flatten"


def test_op_names_match_layer_scopes_with_or_without_the_keras_suffix():
    layers = ["c1_cp_0", "c1_cp_1", "r2", "d2"]
    assert layer_in_op_name("functional_1/c1_cp_0_1/convolution1", layers) == "c1_cp_0"
    assert layer_in_op_name("functional_1/c1_cp_1/depthwise", layers) == "c1_cp_1"
    assert layer_in_op_name("functional_1/r2_1/Relu;functional_1/c1_cp_1_1/conv", layers) == "r2"
    assert layer_in_op_name("Identity", layers) is None
