"""ViDT without neck: shapes, losses and per-query decoding (configs: tests/test_configs)."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmvidt.official.vidt_wo_neck import (convert_vidt_wo_neck_detector,
                                            vidt_wo_neck_model_from_official_args)
from mmvidt.models.detectors.vidt_wo_neck import ViDTWoNeck


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def small_model(class_logit_indices=(1, 3, 4)) -> ViDTWoNeck:
    model = MODELS.build(dict(
        type='ViDTWoNeck',
        data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=1),
        backbone=dict(type='SwinRAM', arch=dict(embed_dims=8, depths=(1, 1, 1, 1),
                                                num_heads=(1, 1, 2, 2)),
                      det_token_num=7, pos_dim=32),
        bbox_head=dict(type='ViDTWoNeckHead', num_classes=5, embed_dims=32,
                       class_logit_indices=class_logit_indices),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[dict(type='ClassificationCost', weight=2.0),
                         dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                         dict(type='IoUCost', iou_mode='giou', weight=2.0)]))))
    model.init_weights()
    return model


def samples(shapes=((64, 80), (56, 72)), batch_shape=(64, 80)):
    out = []
    for h, w in shapes:
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(2 * h, 2 * w),
                                        batch_input_shape=batch_shape))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[4., 6., 30., 40.]]),
                                      labels=torch.tensor([2]))
        out.append(s)
    return out


def test_forward_shapes_losses_and_gradients():
    model = small_model().train()
    logits, boxes = model._forward(torch.randn(2, 3, 64, 80), samples())
    assert logits.shape == (1, 2, 7, 6) and boxes.shape == (1, 2, 7, 4)
    assert 0 < boxes.min() and boxes.max() < 1
    losses = model.loss(torch.randn(2, 3, 64, 80), samples())
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou'}
    sum(losses.values()).backward()
    assert model.bbox_head.input_proj[0].weight.grad.abs().sum() > 0
    assert model.backbone.det_token.grad.abs().sum() > 0


def test_no_object_weight_and_label_mapping():
    head = small_model().bbox_head
    assert head.loss_cls.class_weight == [1.0] * 5 + [0.1]
    # dataset label 2 trains logit column 4; the 6 unmatched queries target no-object (weight 0.1)
    logits = torch.zeros(1, 1, 7, 6)
    logits[..., 4] = 1.
    logits[..., 5] = 3.
    boxes = torch.full((1, 1, 7, 4), 0.3)
    meta = dict(img_shape=(64, 80))
    gt = InstanceData(bboxes=torch.tensor([[4., 6., 30., 40.]]), labels=torch.tensor([2]))
    loss = head.loss_by_feat(logits, boxes, [gt], [meta])['loss_cls']
    log_p = logits[0, 0, 0].log_softmax(-1)
    expected = (-log_p[4] - 6 * 0.1 * log_p[5]) / (1 + 6 * 0.1)
    assert torch.allclose(loss, expected)


def test_prediction_is_one_detection_per_query_in_query_order():
    head = small_model().bbox_head.eval()
    logits = torch.full((7, 6), -5.)
    logits[:, 5] = 0.  # no-object
    logits[0, 3] = 4.  # dataset label 1
    logits[1, 2] = 4.  # column 2 is no dataset class: dropped
    logits[2:, 1] = torch.arange(5.)  # label 0, increasing scores
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4]]).repeat(7, 1)
    result = head._predict_by_feat_single(logits, boxes, dict(img_shape=(10, 20),
                                                              ori_shape=(100, 200)))
    assert result.labels.tolist() == [1, 0, 0, 0, 0, 0]
    assert torch.equal(result.scores, logits.softmax(-1)[[0, 2, 3, 4, 5, 6], :5].max(-1)[0])
    assert torch.allclose(result.bboxes[0], torch.tensor([80., 30., 120., 70.]))
    model = small_model().eval()
    out = model.predict(torch.randn(2, 3, 64, 80), samples())
    assert len(out[0].pred_instances) <= 7


def test_softmax_loss_is_required():
    with pytest.raises(ValueError, match='softmax'):
        MODELS.build(dict(type='ViDTWoNeckHead', num_classes=3,
                          loss_cls=dict(type='FocalLoss', use_sigmoid=True)))


def test_converter_rejects_other_methods(load_fixture):
    fixture = load_fixture('vidt_main_boxrefine.pt')
    with pytest.raises(ValueError, match='not vidt_wo_neck'):
        vidt_wo_neck_model_from_official_args(fixture['meta']['args'])
    with pytest.raises(ValueError, match='unexpected key'):
        convert_vidt_wo_neck_detector(fixture['state_dict'])
