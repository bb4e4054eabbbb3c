"""Deployment: detectors as one traceable function of the image tensor (ONNX, torch.export).

Depends on the core (``mmvidt.models``); nothing in the core imports it.
"""
from .build_deployable import build_deployable
from .deployable_detector import DEPLOY_OUTPUTS, DeployableDetector, DeployableModel
from .dense_detector import DeployableDenseDetector
from .detr_like_detector import DeployableDETRLikeDetector

__all__ = ['DEPLOY_OUTPUTS', 'DeployableDenseDetector', 'DeployableDETRLikeDetector',
           'DeployableDetector', 'DeployableModel', 'build_deployable']
