"""Project exception types: one per category of bad input, each message naming the thing and the fix.

The CLI turns any EdgeCompressError into one line on stderr and exit code 2.
"""


class EdgeCompressError(Exception):
    """Base class: bad input the user can fix (exit code 2)."""


class ConfigError(EdgeCompressError):
    """An option is unknown or invalid: a method, selection, metric, rule, override or fine-tuning setting."""


class ModelLoadError(EdgeCompressError):
    """A model file is missing, empty, truncated or not a Keras model."""


class UnsupportedLayerError(EdgeCompressError):
    """A layer cannot be factorized or lowered by the requested method."""


class InvalidRankError(EdgeCompressError):
    """A rank is outside the valid range for a layer and method."""


class DataError(EdgeCompressError):
    """Calibration/test data is missing, malformed or does not fit the model."""


class BudgetError(EdgeCompressError):
    """A budget string is malformed or cannot be met."""


class ExportError(EdgeCompressError):
    """A model cannot be converted to the requested format."""


class TargetError(EdgeCompressError):
    """A benchmark target is unknown, misconfigured or unreachable."""
