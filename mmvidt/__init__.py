"""mmvidt: ViDT / ViDT+ detectors and PiT / ReXNet backbones for the OpenMMLab stack.

Importing ``mmvidt`` registers every module into mmdet's and mmpretrain's registries, and makes
every checkpoint scheme of mmengine's ``CheckpointLoader`` (local files, ``http(s)://`` and the
schemes built on it, ``s3://``, ``pavi://``, ``open-mmlab://``) load through
:func:`mmvidt.utils.safe_load`: mmengine's scheme loaders are re-registered and the download
function of its HTTP loader (``mmengine.runner.checkpoint.load_url``) is replaced (see
:mod:`mmvidt.utils.checkpoint_schemes`). This covers ``load_checkpoint``,
``Runner(load_from=...)``, ``resume``, ``init_cfg=dict(type='Pretrained')`` and mmpretrain's
``get_model(pretrained=...)``. torch's process-wide ``weights_only`` allow-list is not changed.
"""
from .utils import install_safe_checkpoint_loader

install_safe_checkpoint_loader()

from . import datasets, engine, models, ops  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
