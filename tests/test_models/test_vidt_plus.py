"""ViDT+ detector: training, mask prediction, configuration errors (preset parameter counts:
tests/test_configs)."""
import copy
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmvidt.models  # noqa: F401

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'vidt_plus'
SHAPES_CONFIG = CONFIGS / 'vidt-plus_swin-pico_1xb4-40e_shapes.py'


def build(cfg, device='cpu'):
    init_default_scope('mmdet')
    cfg = copy.deepcopy(cfg)
    cfg.backbone.pop('init_cfg', None)
    with torch.device(device):
        return MODELS.build(cfg)


def shapes_model():
    cfg = Config.fromfile(SHAPES_CONFIG)
    model = build(cfg.model)
    return model


def synthetic_batch(num_images=2, size=(64, 80)):
    """Normalised images with painted rectangles, data samples with boxes, labels and masks."""
    images = torch.randn(num_images, 3, *size) * 0.1
    samples = []
    for index in range(num_images):
        masks = torch.zeros(2, *size, dtype=torch.bool)
        boxes = torch.tensor([[8., 6., 40., 30.], [30., 20., 70., 60.]]) + index
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.long().tolist()):
            mask[y0:y1, x0:x1] = True
            images[index, :, y0:y1, x0:x1] += 1.0
        sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                             batch_input_shape=size, scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 2]),
                                           masks=BitmapMasks(masks.numpy(), *size))
        samples.append(sample)
    return images, samples


def test_shapes_config_trains_and_predicts_masks():
    torch.manual_seed(0)
    model = shapes_model()
    images, samples = synthetic_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    totals = []
    model.train()
    for _ in range(6):
        losses = model.loss(images, samples)
        expected = {'loss_iou_aware', 'loss_vector', 'loss_token_focal', 'loss_token_dice',
                    'd0.loss_vector', 'd0.loss_iou_aware'}
        assert expected <= set(losses)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert totals[-1] < 0.8 * totals[0], totals
    model.eval()
    with torch.no_grad():
        results = model.predict(images, samples)
    pred = results[0].pred_instances
    assert pred.masks.dtype == torch.bool
    assert pred.masks.shape == (len(pred.bboxes), 64, 80)
    assert set(pred.labels.tolist()) <= {0, 1, 2, 3}


def test_every_trained_parameter_gets_a_gradient():
    model = shapes_model()
    images, samples = synthetic_batch()
    sum(model.loss(images, samples).values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_missing_masks_and_column_zero_are_reported():
    model = shapes_model()
    images, samples = synthetic_batch()
    for sample in samples:
        del sample.gt_instances.masks
    with pytest.raises(ValueError, match='with_mask=True'):
        model.loss(images, samples)
    cfg = Config.fromfile(SHAPES_CONFIG).model
    cfg.bbox_head.class_logit_indices = [0, 1, 2, 3]
    model = build(cfg)
    with pytest.raises(ValueError, match='column 0 as objectness'):
        model.loss(*synthetic_batch())


def test_token_labels_need_both_the_neck_branch_and_the_head_loss():
    cfg = Config.fromfile(SHAPES_CONFIG).model
    cfg.bbox_head = dict(cfg.bbox_head, type='ViDTHead')
    for key in ('loss_iou_aware', 'vector_cfg', 'loss_vector', 'loss_token'):
        cfg.bbox_head.pop(key)
    message = r'the neck predicts token labels \({}, neck.token_label\) and the head has a ' \
              r'token-label loss \({}, ViDTPlusHead.loss_token\)'
    with pytest.raises(ValueError, match=message.format(True, False)):
        build(cfg)
    cfg = Config.fromfile(SHAPES_CONFIG).model
    cfg.neck.pop('token_label')
    with pytest.raises(ValueError, match=message.format(False, True)):
        build(cfg)


def test_detection_layout_predicts_boxes_only():
    cfg = Config.fromfile(SHAPES_CONFIG).model
    cfg.neck.pop('token_label')
    cfg.bbox_head.update(loss_token=None, vector_cfg=None)
    model = build(cfg).eval()
    images, samples = synthetic_batch(1)
    with torch.no_grad():
        pred = model.predict(images, samples)[0].pred_instances
    assert 'masks' not in pred and len(pred.bboxes) > 0
    model.train()
    assert 'loss_vector' not in model.loss(images, samples)


def test_vidt_plus_student_under_the_distiller_gets_its_token_losses():
    """The distiller hands the student's token-label logits to its head by name."""
    cfg = Config.fromfile(SHAPES_CONFIG).model
    teacher = dict(cfg, backbone=dict(cfg.backbone, arch=dict(
        embed_dims=48, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))))
    teacher.pop('data_preprocessor')
    model = build(ConfigDict(cfg, type='ViDTDistiller', teacher_config=teacher)).train()
    losses = model.loss(*synthetic_batch())
    assert {'loss_token_focal', 'loss_token_dice', 'loss_vector', 'loss_distil'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.neck.token_branch.cls.weight.grad.abs().sum() > 0
