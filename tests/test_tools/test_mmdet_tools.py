"""mmdet's own tools run mmvidt configs through ``custom_imports`` alone: train.py, and the
analysis tools benchmark.py, analyze_logs.py and browse_dataset.py (their extra imports, psutil
and seaborn, are in requirements/tools.txt)."""
import json
import os.path as osp
import sys
from pathlib import Path

import mmdet
import pytest

from tool_utils import REPO_ROOT, run_tool

MMDET_TOOLS = Path(osp.dirname(mmdet.__file__)) / '.mim' / 'tools'
DEMO_CONFIG = REPO_ROOT / 'configs' / 'vidt' / 'vidt_swin-pico_1xb4-40e_shapes.py'


def mmdet_tool(script: str, *args) -> list:
    return [sys.executable, str(MMDET_TOOLS / script), *map(str, args)]


@pytest.fixture(scope='module')
def trained(shapes_root, tmp_path_factory) -> Path:
    """Work dir of one epoch of the demo ViDT trained by mmdet's tools/train.py."""
    work_dir = tmp_path_factory.mktemp('mmdet_train')
    output = run_tool(mmdet_tool('train.py', DEMO_CONFIG, '--work-dir', work_dir, '--cfg-options',
                                 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                                 'default_hooks.logger.interval=1'), shapes_root)
    assert 'Epoch(train) [1][2/2]' in output and 'loss_cls' in output
    assert 'coco/bbox_mAP' in output  # CocoMetric ran on the validation split
    return work_dir


def test_mmdet_train_tool_runs_a_vidt_config(trained):
    assert osp.isfile(trained / 'epoch_1.pth')


def test_mmdet_analyze_logs_plots_and_times_the_run(trained, tmp_path):
    log, = trained.glob('*/vis_data/scalars.json')
    losses = [json.loads(line)['loss'] for line in log.read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 2
    out = tmp_path / 'loss.png'
    run_tool(mmdet_tool('analysis_tools/analyze_logs.py', 'plot_curve', log, '--keys', 'loss',
                        '--backend', 'Agg', '--out', out), tmp_path)
    assert out.stat().st_size > 1000
    output = run_tool(mmdet_tool('analysis_tools/analyze_logs.py', 'cal_train_time', log),
                      tmp_path)
    assert 'average iter time' in output


def test_mmdet_benchmark_measures_the_shapes_dataloader(shapes_root):
    output = run_tool(mmdet_tool('analysis_tools/benchmark.py', DEMO_CONFIG, '--task',
                                 'dataloader', '--max-iter', 2, '--num-warmup', 0,
                                 '--log-interval', 1, '--repeat-num', 1), shapes_root)
    assert 'Overall fps' in output and 'mem_used' in output  # psutil's memory report


def test_mmdet_browse_dataset_draws_the_shapes_annotations(shapes_root, tmp_path):
    run_tool(mmdet_tool('analysis_tools/browse_dataset.py', DEMO_CONFIG, '--not-show',
                        '--output-dir', tmp_path), shapes_root)
    drawn = sorted(p.name for p in tmp_path.iterdir())
    assert len(drawn) == 8 and all(name.endswith('.png') for name in drawn)
