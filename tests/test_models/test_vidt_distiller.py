"""Token-matching distillation: the loss, the frozen teacher and the distil configs."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmvidt.utils.state_dict import StateDictMismatchError
from mmvidt.official.vidt_detector import official_backbone_cfg, vidt_model_from_official_args
from mmvidt.models.detectors.vidt_distiller import ViDTDistiller
from mmvidt.models.losses.token_matching_loss import DistilTokens, TokenMatchingLoss
from tool_utils import python_tool, run_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def small_vidt(embed_dims: int = 8, num_queries: int = 5, num_layers: int = 2) -> dict:
    return dict(
        type='ViDT',
        data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=1),
        backbone=dict(type='SwinRAM', arch=dict(embed_dims=embed_dims, depths=(1, 1, 1, 1),
                                                num_heads=(1, 1, 2, 2)),
                      det_token_num=num_queries, pos_dim=32, last_merge_channels=32),
        neck=dict(type='ViDTNeck', embed_dims=32,
                  decoder=dict(num_layers=num_layers,
                               layer_cfg=dict(num_heads=2, feedforward_channels=64, dropout=0.))),
        bbox_head=dict(type='ViDTHead', num_classes=3, embed_dims=32,
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                     loss_weight=2.0)),
        train_cfg=dict(assigner=dict(
            type='HungarianAssigner',
            match_costs=[dict(type='FocalLossCost', weight=2.0),
                         dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                         dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
        test_cfg=dict(max_per_img=5))


def distiller(teacher_ckpt=None, **teacher_kwargs) -> ViDTDistiller:
    model = MODELS.build(
        dict(small_vidt(), type='ViDTDistiller',
             teacher_config=small_vidt(embed_dims=16, **teacher_kwargs),
             teacher_ckpt=teacher_ckpt))
    model.init_weights()
    return model


def batch():
    images = torch.randn(2, 3, 64, 80)
    samples = []
    for h, w in ((64, 80), (56, 72)):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        batch_input_shape=(64, 80)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[4., 6., 30., 40.]]),
                                      labels=torch.tensor([1]))
        samples.append(s)
    return images, samples


def test_token_matching_loss_is_the_official_formula():
    torch.manual_seed(1)
    patches = [torch.randn(2, 4, 3, 5), torch.randn(2, 4, 2, 3)]
    det, hs = torch.randn(2, 6, 4), torch.randn(3, 2, 6, 4)
    student = DistilTokens(patches, det, hs)
    teacher = DistilTokens([p + torch.randn_like(p) for p in patches], det * 2, hs - 1)

    def dist(a, b):  # official: flatten to tokens x channels, mean of row L2 norms
        return (a - b).norm(dim=-1).mean()

    expected = sum(dist(s.permute(0, 2, 3, 1).reshape(-1, 4), t.permute(0, 2, 3, 1).reshape(
        -1, 4)) for s, t in zip(student.patch_tokens, teacher.patch_tokens))
    expected = expected + dist(det, det * 2) + 3 * dist(hs, hs - 1)
    loss = TokenMatchingLoss(loss_weight=4.0)(student, teacher)
    assert torch.allclose(loss, 4 * expected.sqrt())


def test_token_matching_loss_needs_equal_shapes():
    student = DistilTokens([torch.zeros(1, 4, 2, 2)], torch.zeros(1, 3, 4), torch.zeros(2, 1, 3, 4))
    teacher = DistilTokens([torch.zeros(1, 4, 2, 2)], torch.zeros(1, 3, 4), torch.zeros(3, 1, 3, 4))
    with pytest.raises(ValueError, match='hidden_states'):
        TokenMatchingLoss()(student, teacher)


def test_teacher_is_frozen_and_outside_the_student():
    model = distiller()
    student_keys = set(model.state_dict())
    assert not any(key.startswith('teacher') for key in student_keys)
    assert set(MODELS.build(small_vidt()).state_dict()) == student_keys
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    assert all(not p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.training and not model.teacher.training
    model.double()  # moves the teacher along
    assert next(model.teacher.parameters()).dtype == torch.float64


def test_distillation_loss_decreases_and_teacher_gets_no_gradient():
    model = distiller().train()
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    images, samples = batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    values = []
    for _ in range(6):
        losses = model.loss(images, samples)
        assert {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_distil'} <= set(losses)
        optimizer.zero_grad()
        losses['loss_distil'].backward()
        values.append(losses['loss_distil'].item())
        optimizer.step()
    assert values[-1] < values[0]
    assert all(p.grad is None for p in model.teacher.parameters())
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_teacher_checkpoint_is_an_mmvidt_checkpoint(tmp_path):
    source = distiller()
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': source.teacher.state_dict()}, path)
    model = distiller(teacher_ckpt=str(path))
    for key, value in source.teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value)
    torch.save({'model': source.teacher.state_dict()}, tmp_path / 'official.pth')
    with pytest.raises(ValueError, match='official ViDT layout; convert it first: python '
                                         'tools/model_converters/vidt2mmvidt.py'):
        distiller(teacher_ckpt=str(tmp_path / 'official.pth'))
    with pytest.raises(StateDictMismatchError, match='missing keys'):
        distiller(teacher_ckpt=str(path), num_layers=3)


def test_teacher_must_be_a_vidt():
    with pytest.raises(TypeError, match='must be a ViDT'):
        MODELS.build(dict(small_vidt(), type='ViDTDistiller',
                          teacher_config=dict(type='SwinRAM', arch='nano')))


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'configs', 'vidt_distil',
                                                           '*.py'))))
def test_distil_configs_build(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'ViDTDistiller' and cfg.model.distil_loss.loss_weight == 4.0
    assert cfg.model.teacher_ckpt == 'checkpoints/vidt_swin-base_8xb2-50e_coco.pth'
    cfg.model.backbone.pop('init_cfg')
    cfg.model.teacher_ckpt = None  # no download in tests
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.teacher.backbone.embed_dims == 128  # Swin-base teacher
    assert model.teacher.neck.num_layers == model.neck.num_layers


def test_converted_official_teacher_gives_the_official_teacher_outputs(tmp_path, load_fixture):
    """The documented route: official teacher -> vidt2mmvidt.py -> teacher_ckpt."""
    fixture = load_fixture('vidt_main_distil.pt')
    args, override = fixture['meta']['args'], fixture['meta']['backbone_override']
    student = vidt_model_from_official_args(args, override, class_logit_indices=None)
    teacher = dict(student, backbone=official_backbone_cfg(args, override, teacher=True))
    torch.save({'model': fixture['teacher_state_dict']}, tmp_path / 'official.pth')
    run_tool(python_tool('model_converters/vidt2mmvidt.py', tmp_path / 'official.pth',
                         tmp_path / 'teacher.pth'), cwd=tmp_path)
    model = MODELS.build(dict(student, type='ViDTDistiller', teacher_config=teacher,
                              teacher_ckpt=str(tmp_path / 'teacher.pth'))).eval()
    inputs = fixture['inputs']
    with torch.no_grad():
        out = model.teacher.forward_features(inputs['images'], inputs['masks'])
        logits, _ = model.teacher.bbox_head(out.hidden_states, out.references)
    assert torch.allclose(logits[-1], fixture['teacher_outputs']['pred_logits'], atol=1e-4,
                          rtol=1e-4)
