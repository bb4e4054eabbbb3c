"""Registration helpers.

mmvidt has no registries of its own: every module is registered into the registries of the
library that builds it (mmdet for detection, mmpretrain for classification), so configs need only
``custom_imports=dict(imports=['mmvidt'], allow_failed_imports=False)``.
"""
from typing import TypeVar

from mmdet.registry import MODELS as DET_MODELS
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

T = TypeVar('T', bound=type)


def register_backbone_everywhere(cls: T) -> T:
    """Class decorator: register a backbone in both mmdet's and mmpretrain's ``MODELS``.

    Backbones such as PiT and ReXNet serve classification (mmpretrain ``ImageClassifier``) and
    detection (any mmdet detector); the same class answers to the same name in both scopes.
    """
    DET_MODELS.register_module(module=cls)
    PRETRAIN_MODELS.register_module(module=cls)
    return cls
