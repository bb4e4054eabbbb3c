"""The demo recipes really learn: the loss drops and a few dozen iterations raise the COCO mAP.

Both run the demo configs unchanged except for the data (a tiny split), the length and the
schedule, so that a broken recipe (optimiser, loss, matching, pipeline) fails in CI.
"""
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmvidt.datasets.shapes import generate_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'vidt', 'vidt_swin-pico_1xb4-40e_shapes.py')
DEMO_PLUS_CONFIG = osp.join(REPO, 'configs', 'vidt_plus', 'vidt-plus_swin-pico_1xb4-40e_shapes.py')


@pytest.fixture(scope='module')
def simple_shapes(tmp_path_factory) -> Path:
    """8 training images of the demo's ``simple`` preset (the validation split is unused)."""
    root = tmp_path_factory.mktemp('shapes_simple')
    generate_dataset(root, 8, 1, 0, 'simple')
    return root


def short_run_config(config: str, data_root: Path, work_dir: Path, epochs: int) -> Config:
    """``config`` trained on the 8 images of ``data_root`` for ``epochs`` (one iteration each
    at the demo batch size of 8) at the recipe's peak learning rate, no checkpoints."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = f'{data_root}/'
    cfg.train_dataloader.sampler.shuffle = False
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs)
    cfg.param_scheduler = None  # constant lr: the tests are about learning, not the schedule
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0)
    return cfg


def test_demo_config_loss_drops(simple_shapes, tmp_path):
    cfg = short_run_config(DEMO_CONFIG, simple_shapes, tmp_path, epochs=30)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 30 * int(np.ceil(8 / cfg.train_dataloader.batch_size))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.6 * first, (first, last)


def train_and_evaluate_on_the_training_images(config: str, data_root: Path, work_dir: Path,
                                              epochs: int) -> dict:
    """COCO metrics (CocoMetric / pycocotools) on the 8 training images after ``epochs``.

    Evaluating on the training images measures memorisation, not generalisation: what a few
    dozen iterations can show, and what a broken recipe cannot reach.
    """
    cfg = short_run_config(config, data_root, work_dir, epochs)
    cfg.val_dataloader.dataset.update(data_root=f'{data_root}/', ann_file='annotations/train.json',
                                      data_prefix=dict(img='train/'))
    cfg.val_evaluator.ann_file = f'{data_root}/annotations/train.json'
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {key[len('val/coco/'):]: runner.message_hub.get_scalar(key).current()
            for key in runner.message_hub.log_scalars if key.startswith('val/coco/')}


def test_demo_recipe_raises_the_bbox_map(simple_shapes, tmp_path):
    metrics = train_and_evaluate_on_the_training_images(DEMO_CONFIG, simple_shapes, tmp_path, 40)
    assert metrics['bbox_mAP_50'] > 0.3 and metrics['bbox_mAP'] > 0.1, metrics
