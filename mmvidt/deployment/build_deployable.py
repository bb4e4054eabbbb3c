"""The deployable form of a built detector: the wrapper of its family (see the contract in
:mod:`mmvidt.deployment.deployable_detector`)."""
from mmdet.models.detectors import DeformableDETR, SingleStageDetector, TwoStageDetector
from torch import nn

from mmvidt.models.detectors.vidt import ViDT
from mmvidt.models.detectors.vidt_wo_neck import ViDTWoNeck

from .deployable_detector import DeployableDetector, DeployableModel
from .dense_detector import DeployableDenseDetector
from .detr_like_detector import DeployableDETRLikeDetector
from .two_stage_detector import DeployableTwoStageDetector


def build_deployable(detector: nn.Module, msda_backend: str = 'pytorch') -> DeployableModel:
    """ViDT, ViDT+ and ViDT without neck -> :class:`DeployableDetector` (MSDA run with
    ``msda_backend``); mmdet's dense single-stage detectors -> :class:`DeployableDenseDetector`;
    Faster R-CNN -> :class:`DeployableTwoStageDetector`; Deformable DETR and DINO ->
    :class:`DeployableDETRLikeDetector` (MSDA run with ``msda_backend``). ``TypeError`` (one
    line, naming the detector) for anything else."""
    if isinstance(detector, (ViDT, ViDTWoNeck)):
        return DeployableDetector(detector, msda_backend)
    if isinstance(detector, SingleStageDetector):
        return DeployableDenseDetector(detector)
    if isinstance(detector, DeformableDETR):  # (DINO too)
        return DeployableDETRLikeDetector(detector, msda_backend)
    if isinstance(detector, TwoStageDetector):
        return DeployableTwoStageDetector(detector)
    raise TypeError(f'{type(detector).__name__} cannot be exported: exportable detectors are '
                    f'ViDT, ViDT+, ViDT without neck, mmdet dense single-stage detectors, '
                    f'Faster R-CNN, Deformable DETR and DINO')
