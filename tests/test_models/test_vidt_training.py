"""The demo ViDT config really learns: its loss drops substantially within a few dozen steps."""
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'vidt', 'vidt_swin-pico_1xb4-40e_shapes.py')


def test_demo_config_loss_drops(shapes_root, tmp_path):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.data_root = str(shapes_root / 'data' / 'shapes') + '/'
    cfg.train_dataloader.sampler.shuffle = False
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=100)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None  # constant lr: the test is about learning, not the schedule
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 60  # 8 images, batch 4, 30 epochs
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.6 * first, (first, last)
