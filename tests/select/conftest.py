"""One similarity search on the trained tiny CNN, shared by the allocation and plan tests."""
import pytest

from tests.select.models import calibration, trained_tiny_cnn

TEST_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.995)


@pytest.fixture(scope="session")
def tiny_run():
    """(run, selector) after capture and search on the trained tiny CNN, every method offered."""
    from edgecompress.compress import CompressConfig, CompressionRun

    config = CompressConfig(samples_per_layer=512, levels=TEST_LEVELS, budget="params=0.3")
    run = CompressionRun(trained_tiny_cnn(), *calibration(256), config, None)
    return run, run.make_selector()
