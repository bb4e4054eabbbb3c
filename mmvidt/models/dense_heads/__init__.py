"""mmvidt dense heads."""
from .vidt_head import ViDTHead  # noqa: F401
