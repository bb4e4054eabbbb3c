"""mmvidt backbones."""
from .pit import PiT  # noqa: F401
from .rexnet import ReXNet  # noqa: F401
from .swin_ram import SwinRAM  # noqa: F401
from .coat_lite_ram import CoaTLiteRAM  # noqa: F401
