"""Model graph stage: describe layers, count costs, fold BatchNorm, replace layers by factorized blocks."""
from edgecompress.graph.layers import LayerInfo, describe  # noqa: F401
from edgecompress.graph.rebuild import normalize  # noqa: F401
