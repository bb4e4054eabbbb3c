"""Deployment: ViDT detectors as one traceable function of the image tensor (ONNX, torch.export).

Depends on the core (``mmvidt.models``); nothing in the core imports it.
"""
from .deployable_detector import DEPLOY_OUTPUTS, DeployableDetector

__all__ = ['DEPLOY_OUTPUTS', 'DeployableDetector']
