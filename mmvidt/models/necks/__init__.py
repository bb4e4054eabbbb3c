"""mmvidt necks."""
from .vidt_neck import ViDTNeck  # noqa: F401
from .epff import EPFF  # noqa: F401
