"""Reports: complete JSON, the Markdown table, both PNG plots, and the "emulated" label everywhere."""
import json
import struct

import pytest

from edgecompress import bench
from edgecompress.bench import report
from edgecompress.bench.result import BenchResult
from tests.bench.conftest import QUICK

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(models, data) -> BenchResult:
    return bench.run([models["base"], models["cheap"]], data=data, settings=QUICK)


def png_size(path) -> tuple[int, int]:
    content = path.read_bytes()
    assert content[:8] == PNG_SIGNATURE
    return struct.unpack(">II", content[16:24])


def test_report_dir_has_json_markdown_and_both_plots(result, tmp_path):
    written = report.write_report(result, tmp_path / "report")
    assert set(written) == {"json", "markdown", "latency_png", "pareto_png"}
    for key in ("latency_png", "pareto_png"):
        width, height = png_size(written[key])
        assert width > 300 and height > 100 and written[key].stat().st_size > 5000
    reloaded = BenchResult.from_dict(json.loads(written["json"].read_text()))
    assert reloaded.models == result.models and reloaded.comparisons == result.comparisons
    assert "| base.tflite |" in written["markdown"].read_text()


def test_markdown_has_a_row_per_model_and_the_speedup(result):
    text = report.markdown(result)
    rows = [line for line in text.splitlines() if line.startswith("| ") and ".tflite" in line]
    assert len(rows) == 2 and all(line.count("|") == 11 for line in rows)
    assert f"{result.models[0]['accuracy']['top1_accuracy']:.2%}" in rows[0]
    assert "Speedup of cheap.tflite over base.tflite" in text and "95% CI" in text
    assert "device timing" in text and "emulated" not in text


def test_emulated_results_say_so_in_every_report(result, tmp_path):
    emulated = BenchResult.from_runner({"system": result.system, "models": result.models,
                                        "comparisons": result.comparisons, "threads": 1},
                                       {"name": "arm64-qemu", "kind": "qemu", "emulated": True})
    text = report.markdown(emulated)
    assert "emulated timing" in text and "p50 ms (emulated)" in text and ", emulated." in text
    assert emulated.to_dict()["timing"] == "emulated" and "never compare" in emulated.notes[0]


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 0.9), (5, 0.8), (7, 0.7), (20, 0.95), (12, 0.85)]
    assert report.pareto_front(points) == [1, 0, 3]


def test_pareto_plot_needs_accuracies(models, tmp_path):
    without_data = bench.run(models["base"], settings=QUICK)
    written = report.write_report(without_data, tmp_path)
    assert "pareto_png" not in written and "no Pareto plot" in written["markdown"].read_text()
