"""ViDT under bf16 autocast: the heads stay float32, so detections keep float32 precision and
mmdet's metrics accept them (CocoMetric refused bf16 boxes)."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvidt.engine import synthetic_detection_batch
from tool_utils import REPO_ROOT

CONFIGS = ['configs/vidt/vidt_swin-pico_1xb4-40e_shapes.py',
           'configs/vidt_plus/vidt-plus_swin-pico_1xb4-40e_shapes.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_bf16_autocast_predictions_are_float32_and_near_fp32(config):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(REPO_ROOT / config).model).eval()
    inputs, samples = synthetic_detection_batch(1, 96, 128, 4)
    with torch.no_grad():
        reference = model._forward(inputs, samples)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            raw = model._forward(inputs, samples)
            detections = model.predict(inputs, copy.deepcopy(samples))[0].pred_instances
    outputs = [(got, want) for got, want in zip(raw, reference) if isinstance(got, torch.Tensor)]
    assert all(got.dtype == torch.float32 for got, _ in outputs)
    boxes, reference_boxes = raw[1], reference[1]  # normalised cxcywh of every level
    assert (boxes - reference_boxes).abs().max() < 0.05
    assert detections.bboxes.dtype == detections.scores.dtype == torch.float32
