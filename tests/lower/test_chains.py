"""Every (method, kind) in the registry lowers to its expected builtin op chain with the activation fused, runs on
LiteRT and ONNX Runtime within 1e-4 x max|y| of Keras (fp16 within 1e-2), and keeps Transposes out of blocks."""
import onnx
import pytest

from edgecompress.factorize import applicable_pairs
from edgecompress.lower import export
from tests.lower.cases import EXPECTED_TFLITE, TARGET, block_model, sample_inputs

PAIRS = applicable_pairs()
COMPUTE_TFLITE = {"CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "FULLY_CONNECTED"}
COMPUTE_ONNX = {"Conv", "MatMul", "Gemm"}
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """export() once per (method, kind, format, precision), shared by the tests below."""
    cache = {}

    def get(method, kind, to, precision="fp32"):
        key = (method, kind, to, precision)
        if key not in cache:
            model = block_model(method, kind)
            path = tmp_path_factory.mktemp(f"{method}_{kind}") / f"block_{precision}.{to}"
            cache[key] = export(model, path, to=to, precision=precision, data=sample_inputs(model))
        return cache[key]

    return get


@pytest.mark.parametrize("method, kind", PAIRS)
def test_tflite_block_is_its_builtin_chain(method, kind, exported):
    audit = exported(method, kind, "tflite").audit
    ops = [record["op"] for record in audit["ops"]]
    assert audit["builtin_only"] and audit["non_builtin_ops"] == []
    assert [row["layer"] for row in audit["layers"]] == [TARGET], "every op traces back to the block's layer"
    assert not next(r for r in audit["passes"] if r["pass"] == "merge_factors_pass")["changed"]
    if (method, kind) in EXPECTED_TFLITE:
        assert ops == EXPECTED_TFLITE[(method, kind)]
    else:  # a method added after this table: still one builtin compute op per factor at least
        assert sum(op in COMPUTE_TFLITE for op in ops) >= 2


@pytest.mark.parametrize("method, kind", PAIRS)
def test_tflite_activation_is_fused_into_the_last_op(method, kind, exported):
    records = exported(method, kind, "tflite").audit["ops"]
    assert not any(record["op"] in ("RELU", "RELU6") for record in records)
    last_arithmetic = [r for r in records if r["op"] in COMPUTE_TFLITE | {"ADD"}][-1]
    assert last_arithmetic["fused_activation"] == "RELU"
    adds = [r for r in records if r["op"] == "ADD"]
    assert method == "ttm" or not adds, "bias rides on the last conv/FC except for TT-matrix"


@pytest.mark.parametrize("method, kind", PAIRS)
def test_tflite_fp32_parity(method, kind, exported):
    parity = exported(method, kind, "tflite").audit["parity"]
    assert parity["samples"] == 8 and parity["max_abs_reference"] > 0
    assert parity["max_abs_diff"] <= FP32_TOLERANCE * parity["max_abs_reference"]


@pytest.mark.parametrize("method, kind", PAIRS)
def test_tflite_fp16_parity(method, kind, exported):
    artifact = exported(method, kind, "tflite", "fp16")
    parity = artifact.audit["parity"]
    assert artifact.audit["builtin_only"]
    assert parity["max_abs_diff"] <= FP16_TOLERANCE * parity["max_abs_reference"]
    assert any(record["op"] == "DEQUANTIZE" for record in artifact.audit["ops"]), "weights stored as float16"


@pytest.mark.parametrize("method, kind", PAIRS)
def test_onnx_checker_parity_and_no_transpose_inside_blocks(method, kind, exported):
    artifact = exported(method, kind, "onnx")
    onnx.checker.check_model(onnx.load(str(artifact.path)), full_check=True)
    audit = artifact.audit
    assert audit["builtin_only"]
    assert audit["parity"]["max_abs_diff"] <= FP32_TOLERANCE * audit["parity"]["max_abs_reference"]
    ops = [record["op"] for record in audit["ops"]]
    tflite_ops = [record["op"] for record in exported(method, kind, "tflite").audit["ops"]]
    assert sum(op in COMPUTE_ONNX for op in ops) == sum(op in COMPUTE_TFLITE for op in tflite_ops)
    if method != "ttm":  # TT-matrix transposes are its algorithm, inside its single layer
        compute = [i for i, op in enumerate(ops) if op in COMPUTE_ONNX]
        inside = [i for i, op in enumerate(ops) if op == "Transpose" and compute[0] < i < compute[-1]]
        assert not inside and audit["transpose_count"] <= 2
