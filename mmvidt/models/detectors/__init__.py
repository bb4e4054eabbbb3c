"""mmvidt detectors."""
from .vidt import ViDT  # noqa: F401
