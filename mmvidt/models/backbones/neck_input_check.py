"""Build-time check that a detector's neck takes the maps of its mmvidt backbone.

mmdet's detectors (RetinaNet, FCOS, Faster R-CNN, DINO, ...) build ``self.backbone`` and then
``self.neck`` from the config. A neck whose ``in_channels`` do not fit the backbone fails only at
the first forward, with an error that does not say what the backbone gives (a convolution shape
mismatch, a bare FPN ``AssertionError``, or "Expected 3D or 4D input to conv2d" when PiT returns
class tokens). mmvidt backbones know their outputs (:class:`OutputLevels`), so the moment a
module holds both a ``backbone`` that is one of them and a ``neck``, the two are compared and a
mismatch raises a ``ValueError`` naming the backbone's real channels and strides.

Why a PyTorch module-registration hook (installed once, when this module is imported): it works
for every detector and every neck without changing mmdet's classes, registries or the user's
config, and fails at build time, before any data is loaded. It costs one name test per submodule
assignment and acts only on attributes named ``backbone`` / ``neck`` whose backbone is an mmvidt
one, outside mmvidt's own detectors (ViDT's neck takes ``forward_ram``, every level, and the
detector checks that contract itself); a wrapper neck or a runner hook would only check the users
who already know to add them.
"""
from typing import Optional

from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook

from .output_levels import OutputLevels


def _first_neck(neck: nn.Module) -> nn.Module:
    """mmdet builds a list of necks as ``nn.Sequential``; the first one takes the maps."""
    if isinstance(neck, nn.Sequential) and len(neck) > 0:
        return neck[0]
    return neck


def check_backbone_and_neck(owner: nn.Module, name: str,
                            child: Optional[nn.Module]) -> None:
    """Module-registration hook: ``owner.<name> = child`` has just been requested.

    Raises:
        ValueError: ``owner`` would hold an mmvidt backbone and a neck that cannot take its
            outputs.
    """
    if name not in ('backbone', 'neck') or child is None:
        return None
    if type(owner).__module__.startswith('mmvidt.'):
        return None  # ViDT's detectors state and check their own backbone / neck contract
    modules = owner.__dict__.get('_modules', {})
    backbone = child if name == 'backbone' else modules.get('backbone')
    neck = child if name == 'neck' else modules.get('neck')
    if isinstance(backbone, OutputLevels) and neck is not None:
        backbone.check_neck(_first_neck(neck), type(owner).__name__)
    return None


_HANDLE = register_module_module_registration_hook(check_backbone_and_neck)
