"""The official ViDT optimizer groups and the off-by-one cosine schedule
(docs/official_behaviour.md#optimiser-groups, #cosine-off-by-one)."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope

import mmvidt  # noqa: F401

SCHEDULES = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'schedules'
#: A 150-epoch config: its 50-epoch sibling with the schedule stretched.
LONG_SCHEDULE = SCHEDULES.parents[1] / 'vidt' / 'vidt_swin-nano_8xb2-150e_coco.py'


class TinyBackbone(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.det_token = nn.Parameter(torch.zeros(1, 4, 8))
        self.det_pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.scale = nn.Parameter(torch.ones(8))  # 1-D, not a bias
        self.frozen = nn.Parameter(torch.zeros(3, 3), requires_grad=False)


class TinyDetector(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.backbone = TinyBackbone()
        self.neck = nn.Sequential(nn.Linear(8, 8), nn.GroupNorm(2, 8))
        self.bbox_head = nn.Linear(8, 4)
        self.det_token = nn.Parameter(torch.zeros(1, 4, 8))  # outside the backbone: decays


def _groups(model: nn.Module, paramwise_cfg=None):
    init_default_scope('mmdet')
    cfg = Config.fromfile(SCHEDULES / 'vidt_50e.py').optim_wrapper
    if paramwise_cfg is not None:
        cfg.paramwise_cfg = paramwise_cfg
    optimizer = build_optim_wrapper(model, cfg).optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    return optimizer, [({names[id(p)]
                         for p in g['params']}, g['weight_decay'], g['lr'])
                       for g in optimizer.param_groups]


def test_official_param_groups():
    model = TinyDetector()
    optimizer, groups = _groups(model)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults['betas'] == (0.9, 0.999)
    assert groups == [
        ({
            'neck.0.weight', 'neck.0.bias', 'neck.1.weight', 'neck.1.bias', 'bbox_head.weight',
            'bbox_head.bias', 'det_token'
        }, 1e-4, 1e-4),
        ({
            'backbone.det_token', 'backbone.det_pos_embed', 'backbone.proj.bias',
            'backbone.norm.weight', 'backbone.norm.bias', 'backbone.scale'
        }, 0.0, 1e-4),
        ({'backbone.relative_position_bias_table', 'backbone.proj.weight'}, 1e-4, 1e-4),
    ]


def test_param_groups_options_and_errors():
    _, groups = _groups(TinyDetector(),
                        dict(no_decay_names=('det_token', ), backbone_prefix='backbone.'))
    assert 'backbone.det_pos_embed' in groups[2][0]
    with pytest.raises(KeyError, match='bias_decay_mult'):
        _groups(TinyDetector(), dict(bias_decay_mult=0.))


def _run_schedule(config: Path, epochs: int) -> list:
    """lr used in each epoch, with the config's schedulers stepped once per epoch."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(config)
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    configs = cfg.param_scheduler
    schedulers = [
        PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optimizer))
        for s in ([configs] if isinstance(configs, dict) else configs)
    ]
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    return lrs


@pytest.mark.parametrize('config, epochs', [(SCHEDULES / 'vidt_50e.py', 50),
                                             (LONG_SCHEDULE, 150)])
def test_cosine_schedule_matches_official_off_by_one(config, epochs):
    lrs = _run_schedule(config, epochs)
    expected = [1e-4] + [
        1e-7 + 0.5 * (1e-4 - 1e-7) * (1 + math.cos(math.pi * (k - 1) / epochs))
        for k in range(1, epochs)
    ]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert lrs[0] == lrs[1] == 1e-4
    if epochs == 50:
        assert lrs[-1] == pytest.approx(4.94e-7, rel=1e-2)


def test_schedule_config_values():
    cfg = Config.fromfile(SCHEDULES / 'vidt_50e.py')
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=0.1, norm_type=2)
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert Config.fromfile(LONG_SCHEDULE).train_cfg.max_epochs == 150
