"""mmvidt: ViDT / ViDT+ detectors and PiT / ReXNet backbones for the OpenMMLab stack.

Importing ``mmvidt`` makes mmengine load checkpoints safely (see
:mod:`mmvidt.utils.safe_checkpoint`).
"""
from .utils import install_safe_checkpoint_loader
from .version import __version__

install_safe_checkpoint_loader()

__all__ = ["__version__"]
