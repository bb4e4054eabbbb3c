"""mmvidt dense heads."""
from .vidt_head import ViDTHead  # noqa: F401
from .vidt_wo_neck_head import ViDTWoNeckHead  # noqa: F401
from .vidt_plus_head import ViDTPlusHead  # noqa: F401
