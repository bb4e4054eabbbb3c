"""tools/train.py, tools/test.py and tools/demo/image_demo.py end to end on a tiny config."""
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from mmengine.fileio import load
from PIL import Image

from mmvidt.utils import safe_load
from tool_utils import REPO_ROOT, TINY_CONFIG, python_tool, run_tool

# 4 of the 8 training images, 2 per batch: 2 iterations per epoch; no validation while training
TWO_ITERS = ['train_dataloader.dataset.indices=4', 'train_cfg.val_interval=10']


@pytest.fixture(scope='module')
def trained(shapes_root, tmp_path_factory) -> Path:
    """Work dir of one epoch (2 iterations) of tools/train.py."""
    work_dir = tmp_path_factory.mktemp('train') / 'work'
    output = run_tool(python_tool('train.py', TINY_CONFIG, '--work-dir', work_dir, '--cfg-options',
                                  *TWO_ITERS),
                      cwd=shapes_root)
    assert 'Epoch(train) [1][2/2]' in output and 'Epoch(train) [1][3/' not in output
    return work_dir


def test_train_saves_a_checkpoint_after_two_iterations(trained):
    checkpoint = safe_load(trained / 'epoch_1.pth')
    assert (checkpoint['meta']['epoch'], checkpoint['meta']['iter']) == (1, 2)
    assert any(k.startswith('backbone.') for k in checkpoint['state_dict'])
    # the ViDT optimizer groups were used: non-backbone, backbone without / with weight decay
    assert [g['weight_decay'] for g in checkpoint['optimizer']['param_groups']] == [1e-4, 0., 1e-4]


def test_train_resumes_from_a_given_checkpoint(trained, shapes_root, tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(trained, work_dir)
    output = run_tool(python_tool('train.py', TINY_CONFIG, '--work-dir', work_dir, '--resume',
                                  work_dir / 'epoch_1.pth', '--cfg-options', *TWO_ITERS,
                                  'train_cfg.max_epochs=2'),
                      cwd=shapes_root)
    assert 'resumed epoch: 1, iter: 2' in output
    assert 'Epoch(train) [2][2/2]' in output and 'Epoch(train) [1][' not in output
    checkpoint = safe_load(work_dir / 'epoch_2.pth')
    assert (checkpoint['meta']['epoch'], checkpoint['meta']['iter']) == (2, 4)


def test_test_tool_reports_coco_metrics_and_dumps_and_draws(trained, shapes_root, tmp_path):
    work_dir, out = tmp_path / 'test', tmp_path / 'preds.pkl'
    output = run_tool(python_tool('test.py', TINY_CONFIG, trained / 'epoch_1.pth', '--work-dir',
                                  work_dir, '--out', out, '--show-dir', 'vis', '--cfg-options',
                                  'test_dataloader.batch_size=1'),
                      cwd=shapes_root)
    assert 'coco/bbox_mAP: ' in output and 'coco/bbox_mAP_50: ' in output
    predictions = load(out)
    assert len(predictions) == 2
    assert all(len(p['pred_instances']['bboxes']) > 0 for p in predictions)
    assert len(list(work_dir.glob('*/vis/**/*.png'))) == 2


def test_image_demo_writes_png(trained, shapes_root, tmp_path):
    image = next((shapes_root / 'data' / 'shapes' / 'val').glob('*.png'))
    jpg = tmp_path / 'demo.jpg'
    Image.open(image).convert('RGB').save(jpg)
    run_tool(python_tool('demo/image_demo.py', jpg, TINY_CONFIG, '--weights',
                         trained / 'epoch_1.pth', '--out-dir', tmp_path / 'out'),
             cwd=shapes_root)
    drawn = Image.open(tmp_path / 'out' / 'demo.png')
    assert drawn.size == Image.open(jpg).size
    assert (tmp_path / 'out' / 'preds' / 'demo.json').is_file()


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'tool_{name}',
                                                  REPO_ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_flags(monkeypatch):
    train = _load_tool('train')
    monkeypatch.setattr(sys, 'argv', [
        'train.py',
        str(TINY_CONFIG), '--amp', '--auto-scale-lr', '--resume', '--cfg-options',
        'optim_wrapper.optimizer.lr=0.5'
    ])
    monkeypatch.setattr(train.torch.cuda, 'is_available', lambda: True)
    cfg = train.build_config(train.parse_args())
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=16)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.work_dir == './work_dirs/tiny_fcos_shapes'
    assert cfg.launcher == 'none'


@pytest.mark.parametrize('cuda, extra, wrapper', [
    (False, [], dict(type='AutocastOptimWrapper', dtype='bfloat16')),
    (True, ['--amp-dtype', 'bfloat16'], dict(type='AmpOptimWrapper', dtype='bfloat16')),
])
def test_train_amp_picks_the_wrapper_of_the_machine(monkeypatch, cuda, extra, wrapper):
    train = _load_tool('train')
    monkeypatch.setattr(train.torch.cuda, 'is_available', lambda: cuda)
    monkeypatch.setattr(sys, 'argv', ['train.py', str(TINY_CONFIG), '--amp', *extra])
    cfg = train.build_config(train.parse_args())
    assert {key: cfg.optim_wrapper.get(key) for key in wrapper} == wrapper


@pytest.mark.parametrize('argv, message', [
    (['--amp', '--amp-dtype', 'float16'], '--amp-dtype float16 needs CUDA'),
    (['--amp-dtype', 'bfloat16'], '--amp-dtype needs --amp'),
])
def test_train_amp_refuses_what_the_machine_cannot_do(monkeypatch, argv, message):
    train = _load_tool('train')
    monkeypatch.setattr(train.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(sys, 'argv', ['train.py', str(TINY_CONFIG), *argv])
    with pytest.raises(ValueError, match=message):
        train.build_config(train.parse_args())


def test_train_and_test_amp_run_on_cpu(trained, shapes_root, tmp_path):
    """``--amp`` used to crash on CPU (mmengine's AmpOptimWrapper asserts a GPU)."""
    work_dir = tmp_path / 'amp'
    output = run_tool(python_tool('train.py', TINY_CONFIG, '--amp', '--work-dir', work_dir,
                                  '--cfg-options', *TWO_ITERS),
                      cwd=shapes_root)
    assert 'Epoch(train) [1][2/2]' in output
    assert safe_load(work_dir / 'epoch_1.pth')['meta']['iter'] == 2
    output = run_tool(python_tool('test.py', TINY_CONFIG, trained / 'epoch_1.pth', '--amp',
                                  '--work-dir', tmp_path / 'test'),
                      cwd=shapes_root)
    assert 'coco/bbox_mAP: ' in output
