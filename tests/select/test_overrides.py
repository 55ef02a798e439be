"""Per-layer overrides: exact names beat 're:' patterns beat '_default'; bad keys and specs are errors."""
import pytest

from edgecompress.errors import ConfigError, InvalidRankError
from edgecompress.select.overrides import LayerOverride, resolve_overrides

NAMES = ["conv1", "conv2", "conv3", "fc1"]


def test_precedence_exact_then_pattern_then_default():
    resolved = resolve_overrides(NAMES, {"_default": "svd", "re:conv.*": "tucker,cp", "conv1": "skip"})
    assert resolved["conv1"] == LayerOverride(skip=True)
    assert resolved["conv2"].methods == resolved["conv3"].methods == ("tucker", "cp")
    assert resolved["fc1"].methods == ("svd",)


def test_fixed_rank_and_dict_forms():
    resolved = resolve_overrides(NAMES, {"conv2": "tucker:0.25", "fc1": {"methods": ["svd"], "rank": 4}})
    assert resolved["conv2"] == LayerOverride(("tucker",), 0.25)
    assert resolved["fc1"].fixed and resolved["fc1"].rank == 4


@pytest.mark.parametrize("overrides, error", [
    ({"convX": "skip"}, ConfigError), ({"re:dense.*": "svd"}, ConfigError),
    ({"conv1": "magic"}, ConfigError), ({"conv1": "tucker,cp:0.5"}, InvalidRankError),
    ({"conv1": {"method": "svd"}}, ConfigError),
])
def test_bad_overrides_are_errors(overrides, error):
    with pytest.raises(error):
        resolve_overrides(NAMES, overrides)
