"""mmvidt backbones.

Every backbone states its output levels (``level_channels`` / ``level_strides``, and
``out_channels`` / ``strides`` for the ``out_indices`` it returns); importing this package also
installs the build-time check that a detector's neck takes those channels
(``neck_input_check.py``).
"""
from . import neck_input_check  # noqa: F401
from .pit import PiT  # noqa: F401
from .rexnet import ReXNet  # noqa: F401
from .swin_ram import SwinRAM  # noqa: F401
from .coat_lite_ram import CoaTLiteRAM  # noqa: F401
