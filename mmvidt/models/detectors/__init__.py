"""mmvidt detectors."""
from .vidt import ViDT  # noqa: F401
from .vidt_wo_neck import ViDTWoNeck  # noqa: F401
from .vidt_distiller import ViDTDistiller  # noqa: F401
