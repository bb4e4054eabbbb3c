"""mmvidt: ViDT / ViDT+ detectors and PiT / ReXNet backbones for the OpenMMLab stack.

Importing ``mmvidt`` registers every module into mmdet's and mmpretrain's registries and makes
mmengine load checkpoints safely (see :mod:`mmvidt.utils.safe_checkpoint`).
"""
from .utils import install_safe_checkpoint_loader

install_safe_checkpoint_loader()

from . import datasets, engine, models, ops  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
