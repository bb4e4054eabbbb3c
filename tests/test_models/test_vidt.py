"""The ViDT detector: modes, matching edge cases, decoding, batching (configs and their
parameter counts: tests/test_configs)."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmvidt.utils.state_dict import StateDictMismatchError, check_state_dict
from mmvidt.official.vidt_detector import convert_vidt_detector
from mmvidt.models.detectors.vidt import ViDT, batch_padding_mask
from mmvidt.official.parity.vidt_detector import build_vidt_from_fixture


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def tiny_vidt(num_queries=6, num_classes=5, with_box_refine=True, **head_kwargs) -> ViDT:
    model = MODELS.build(
        dict(
            type='ViDT',
            with_box_refine=with_box_refine,
            data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=1),
            backbone=dict(type='SwinRAM', arch=dict(embed_dims=8, depths=(1, 1, 1, 1),
                                                    num_heads=(1, 1, 2, 2)),
                          det_token_num=num_queries, pos_dim=32, last_merge_channels=32),
            neck=dict(type='ViDTNeck', embed_dims=32,
                      decoder=dict(num_layers=2, layer_cfg=dict(num_heads=2,
                                                                feedforward_channels=64))),
            bbox_head=dict(type='ViDTHead', num_classes=num_classes, embed_dims=32,
                           loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                         alpha=0.25, loss_weight=2.0),
                           **head_kwargs),
            train_cfg=dict(assigner=dict(
                type='HungarianAssigner',
                match_costs=[dict(type='FocalLossCost', weight=2.0),
                             dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                             dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
            test_cfg=dict(max_per_img=10)))
    model.init_weights()
    return model


def sample(img_shape, batch_shape, boxes=(), labels=(), ori_shape=None):
    data_sample = DetDataSample(metainfo=dict(
        img_shape=img_shape, ori_shape=ori_shape or img_shape, batch_input_shape=batch_shape,
        pad_shape=batch_shape, scale_factor=(1., 1.)))
    data_sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long))
    return data_sample


def test_loss_predict_and_tensor_modes():
    model = tiny_vidt()
    images = torch.randn(2, 3, 70, 90)
    samples = [sample((70, 90), (70, 90), [[5, 5, 40, 30], [30, 20, 80, 60]], [1, 3]),
               sample((64, 75), (70, 90), [[10, 10, 20, 50]], [4])]
    losses = model(images, samples, mode='loss')
    # final level + one auxiliary level per decoder layer before the last + level 0 (tokens)
    assert {'loss_cls', 'loss_bbox', 'loss_iou', 'd0.loss_cls', 'd1.loss_iou'} <= set(losses)
    assert 'd2.loss_cls' not in losses
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.backbone.det_token.grad.abs().sum() > 0
    assert model.neck.decoder.layers[0].cross_attn.sampling_offsets.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        results = model(images, samples, mode='predict')
        logits, boxes = model(images, samples, mode='tensor')
    assert logits.shape == (3, 2, 6, 5) and boxes.shape == (3, 2, 6, 4)
    assert ((boxes >= 0) & (boxes <= 1)).all()
    for result in results:
        assert len(result.pred_instances) == 10
        assert result.pred_instances.bboxes.shape == (10, 4)


def test_images_without_objects_and_more_objects_than_queries():
    model = tiny_vidt(num_queries=3)
    images = torch.randn(2, 3, 64, 64)
    many = [[i * 6, i * 5, i * 6 + 20, i * 5 + 25] for i in range(5)]
    samples = [sample((64, 64), (64, 64)), sample((64, 64), (64, 64), many, [0, 1, 2, 3, 4])]
    losses = model(images, samples, mode='loss')
    assert all(torch.isfinite(v).all() for v in losses.values())
    # with no object at all the box losses vanish and classification still trains
    empty = model(images, [sample((64, 64), (64, 64)), sample((64, 64), (64, 64))], mode='loss')
    assert empty['loss_bbox'] == 0 and empty['loss_iou'] == 0 and empty['loss_cls'] > 0


def test_padding_mask_from_img_shape():
    samples = [sample((3, 4), (5, 6)), sample((5, 6), (5, 6))]
    mask = batch_padding_mask(torch.zeros(2, 3, 5, 6), samples)
    assert mask[0, :3, :4].logical_not().all() and mask[0, 3:].all() and mask[0, :, 4:].all()
    assert not mask[1].any()
    assert not batch_padding_mask(torch.zeros(1, 3, 5, 6), None).any()


def test_decoding_maps_logit_columns_to_labels_without_clipping():
    model = tiny_vidt(num_classes=6, class_logit_indices=[4, 1, 2])
    head = model.bbox_head
    logits = torch.full((2, 6), -10.)
    logits[0, 5] = 5.  # best score, but column 5 is no dataset class: dropped
    logits[0, 4] = 4.  # column 4 = dataset label 0
    logits[1, 1] = 3.  # column 1 = dataset label 1
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.95, 0.1, 0.3, 0.4]])
    result = head._predict_by_feat_single(logits, boxes,
                                          dict(img_shape=(50, 100), ori_shape=(200, 400)))
    assert result.labels[:2].tolist() == [0, 1]
    assert (result.labels >= 0).all() and len(result) < 10
    assert not torch.isclose(result.scores, torch.tensor(5.).sigmoid()).any()
    torch.testing.assert_close(result.bboxes[0], torch.tensor([160., 60., 240., 140.]))
    # boxes leaving the image are kept as predicted (official post-processing clips nothing)
    torch.testing.assert_close(result.bboxes[1], torch.tensor([320., -20., 440., 60.]))
    with pytest.raises(ValueError, match='distinct logit columns'):
        tiny_vidt(num_classes=6, class_logit_indices=[1, 1])


def perturb_(model: torch.nn.Module) -> None:
    """Add the fixtures' noise to every parameter so that no branch sits at its zero init."""
    with torch.no_grad():
        for param in model.parameters():
            scale = max(0.02, 0.1 * float(param.std())) if param.numel() > 1 else 0.02
            param.add_(torch.randn_like(param) * scale)


def test_padded_batch_matches_single_image_up_to_padding_effects():
    """Images of a batch do not influence each other: padded in a batch = padded alone.

    Padding itself does change an image's results a little, as in the official model: its zeros
    enter the GroupNorm statistics of the input projections and the Swin windows that straddle
    the border (the [DET] cross-attention masks it), so batch size 1 without padding differs.
    """
    torch.manual_seed(1)
    model = tiny_vidt().eval()
    perturb_(model)
    small, large = torch.randn(1, 3, 60, 72), torch.randn(1, 3, 84, 100)
    padded = torch.zeros(2, 3, 84, 100)
    padded[0, :, :60, :72], padded[1] = small[0], large[0]
    with torch.no_grad():
        alone = model(small, [sample((60, 72), (60, 72))], mode='tensor')
        alone_padded = model(padded[:1], [sample((60, 72), (84, 100))], mode='tensor')
        batched = model(padded, [sample((60, 72), (84, 100)), sample((84, 100), (84, 100))],
                        mode='tensor')
    for mine, other in zip(batched, alone_padded):
        torch.testing.assert_close(mine[:, 0], other[:, 0], atol=1e-4, rtol=1e-4)
    logits_diff = (alone[0][-1, 0] - batched[0][-1, 0]).abs().max()
    boxes_diff = (alone[1][-1, 0] - batched[1][-1, 0]).abs().max()
    assert logits_diff > 1e-3 and boxes_diff < 0.05, (logits_diff, boxes_diff)


def test_converter_names_unknown_keys(load_fixture):
    official = dict(load_fixture('vidt_main_boxrefine.pt')['state_dict'])
    converted = convert_vidt_detector(official)
    assert 'bbox_head.reg_branches.6.4.weight' in converted
    assert not [k for k in converted if 'level_embed' in k or 'decoder.bbox_embed' in k]
    official['transformer.mystery.weight'] = torch.zeros(1)
    with pytest.raises(StateDictMismatchError, match='transformer.mystery.weight'):
        convert_vidt_detector(official)


def test_converted_checkpoint_is_checked_against_the_model(load_fixture):
    fixture = load_fixture('vidt_main_boxrefine.pt')
    model = build_vidt_from_fixture(fixture)
    converted = convert_vidt_detector(fixture['state_dict'])
    converted.pop('neck.tgt_proj.0.weight')
    converted['bbox_head.cls_branches.0.weight'] = torch.zeros(3, 3)
    with pytest.raises(StateDictMismatchError, match=r'(?s)neck.tgt_proj.0.weight.*cls_branches'):
        check_state_dict(converted, model.state_dict())
