"""edgecompress: hybrid low-rank factorization of Keras CNNs, lowered to TFLite/ONNX and benchmarked on edge targets.

Importing the package registers every factorized layer with Keras, so `keras.models.load_model` works on
a compressed `.keras` file in a fresh process.
"""
import os

# TensorFlow reads these when it is first imported: set them before anything imports it, so the CLI's
# promise of one line on stderr holds. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ runtime prints start-up banners to fd 2 whatever the log level: hide only those."""
    import sys

    if "tensorflow" in sys.modules or os.environ.get("EDGECOMPRESS_TF_BANNERS"):
        return
    saved_fd, null_fd = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null_fd, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(null_fd)


_import_tensorflow_quietly()
# Scoring many rebuilt models makes Keras retrace predict functions; TensorFlow then logs a "retracing" warning
# that reads like a user error. The environment variable above does not reach this Python logger.
if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3":
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)

from edgecompress import factorize  # noqa: E402  # noqa: F401  (registers methods and Keras layers)
from edgecompress.errors import EdgeCompressError  # noqa: E402
from edgecompress.compress import CompressConfig, Compressed, compress  # noqa: E402
from edgecompress.lower import Artifact, export  # noqa: E402
from edgecompress import bench  # noqa: E402  (edgecompress.bench.run without another import)

__version__ = "0.1.0"
__all__ = ["Artifact", "CompressConfig", "Compressed", "EdgeCompressError", "bench", "compress", "export",
           "factorize", "__version__"]
