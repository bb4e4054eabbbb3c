"""mmvidt necks."""
from .vidt_neck import ViDTNeck  # noqa: F401
