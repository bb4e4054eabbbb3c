"""mmvidt: ViDT / ViDT+ detectors and PiT / ReXNet backbones for the OpenMMLab stack.

Importing ``mmvidt`` has exactly two effects:

* every module is registered into mmdet's and mmpretrain's registries (configs only need
  ``custom_imports=dict(imports=['mmvidt'])``);
* mmengine's checkpoint loaders are replaced by safe ones, so that ``load_checkpoint``,
  ``Runner(load_from=...)`` and ``resume`` read mmengine checkpoints on torch >= 2.6 without
  ever running code from the file (see :mod:`mmvidt.utils.safe_checkpoint`).

Nothing is compiled on import; the multi-scale deformable attention kernels are built by
``setup.py`` (or just in time with ``MMVIDT_JIT=1``, see :mod:`mmvidt.ops.msda_build`). The
package layers are described in ``docs/architecture.md``.
"""
from .utils import install_safe_checkpoint_loader

install_safe_checkpoint_loader()

from . import datasets, engine, models, ops  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
