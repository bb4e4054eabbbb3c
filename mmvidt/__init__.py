"""mmvidt: ViDT / ViDT+ detectors and PiT / ReXNet backbones for the OpenMMLab stack.

Importing ``mmvidt`` has exactly these effects:

* every module is registered into mmdet's and mmpretrain's registries (configs only need
  ``custom_imports=dict(imports=['mmvidt'])``);
* every checkpoint scheme of mmengine's ``CheckpointLoader`` (local files, ``http(s)://`` and the
  schemes built on it, ``s3://``, ``pavi://``, ``open-mmlab://``) loads through
  :func:`mmvidt.utils.safe_load`: mmengine's scheme loaders are re-registered and the download
  function of its HTTP loader (``mmengine.runner.checkpoint.load_url``) is replaced (see
  :mod:`mmvidt.utils.checkpoint_schemes`). This covers ``load_checkpoint``,
  ``Runner(load_from=...)``, ``resume``, ``init_cfg=dict(type='Pretrained')`` and mmpretrain's
  ``get_model(pretrained=...)``; torch's process-wide ``weights_only`` allow-list is not changed;
* a PyTorch module-registration hook checks, when an mmdet detector gets an mmvidt backbone and
  a neck, that the neck takes the backbone's maps (see
  :mod:`mmvidt.models.backbones.neck_input_check`).

Nothing is compiled on import; the multi-scale deformable attention kernels are built by
``setup.py`` (or just in time with ``MMVIDT_JIT=1``, see :mod:`mmvidt.ops.msda_build`). The
package layers are described in ``docs/architecture.md``.
"""
from .utils import install_safe_checkpoint_loader

install_safe_checkpoint_loader()

from . import datasets, engine, models, ops  # noqa: E402,F401  (registration side effects)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
