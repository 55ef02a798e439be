"""plan.json has every field DESIGN.md lists, reads back, and refuses other versions."""
import json

import pytest

from edgecompress.errors import DataError
from edgecompress.select.plan import PLAN_VERSION, Plan

LAYER_FIELDS = {"name", "kind", "method", "rank", "similarity", "params_before", "params_after", "flops_before",
                "flops_after"}


@pytest.fixture(scope="module")
def plan(tiny_run):
    run, selector = tiny_run
    choices = run.choose(selector)
    compressed, finals = run.build(selector, choices)
    return run.plan(selector, choices, finals, compressed)


def test_plan_json_has_every_design_field(plan):
    data = json.loads(plan.dumps())
    assert data["version"] == PLAN_VERSION == 1
    assert set(data) == {"version", "budget", "layers", "totals"}
    assert data["budget"]["text"] == "params=0.3"
    for layer in data["layers"]:
        assert LAYER_FIELDS <= set(layer)
        assert (layer["method"] is None) == ("reason" in layer)
        assert layer["params_after"] <= layer["params_before"]
    assert set(data["totals"]) == {"conv", "dense", "flops_before", "flops_after"}
    for group in ("conv", "dense"):
        assert set(data["totals"][group]) == {"params_before", "params_after"}
    assert any(layer["method"] for layer in data["layers"])


def test_plan_reads_back(plan):
    again = Plan.from_json(json.loads(plan.dumps()))
    assert again.to_json() == plan.to_json()
    assert again.choices() == plan.choices()


def test_plan_of_another_version_is_refused(plan):
    data = {**json.loads(plan.dumps()), "version": 99}
    with pytest.raises(DataError, match="version"):
        Plan.from_json(data)
