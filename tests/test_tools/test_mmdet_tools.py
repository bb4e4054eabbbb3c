"""mmdet's own tools/train.py runs mmvidt configs through ``custom_imports`` alone."""
import os.path as osp
import sys

import mmdet

from tool_utils import REPO_ROOT, run_tool

MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
DEMO_CONFIG = REPO_ROOT / 'configs' / 'vidt' / 'vidt_swin-pico_1xb4-40e_shapes.py'


def test_mmdet_train_tool_runs_a_vidt_config(shapes_root, tmp_path):
    output = run_tool([
        sys.executable, MMDET_TRAIN, str(DEMO_CONFIG), '--work-dir', str(tmp_path), '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.logger.interval=1'
    ], shapes_root)
    assert 'Epoch(train) [1][2/2]' in output and 'loss_cls' in output
    assert 'coco/bbox_mAP' in output  # CocoMetric ran on the validation split
    assert osp.isfile(tmp_path / 'epoch_1.pth')
