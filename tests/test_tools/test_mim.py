"""OpenMMLab's mim finds mmvidt's model index, configs and tools in an installed package.

A wheel is built from a copy of the checkout (so the checkout's ``mmvidt/.mim`` is left alone)
and installed into a temporary directory put first on ``PYTHONPATH``: mim then sees an ordinary
installation, as after ``pip install .``.
"""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tool_utils import REPO_ROOT, run_tool

#: What the wheel must carry for mim, besides the package itself.
MIM_FILES = ('mmvidt/.mim/model-index.yml', 'mmvidt/.mim/tools/train.py',
             'mmvidt/.mim/tools/test.py', 'mmvidt/.mim/configs/vidt/metafile.yml',
             'mmvidt/.mim/configs/_base_/imagenet_pretrained.py',
             'mmvidt/.mim/configs/vidt/vidt_swin-nano_8xb2-50e_coco.py')
SHAPES_CONFIG = 'retinanet_rexnet-1.0_1xb2-12e_shapes.py'


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp('source')
    tracked = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                             cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO_ROOT / name).read_bytes())
    out = tmp_path_factory.mktemp('wheel')
    # pure-Python wheel: the compiled kernels are not what this test is about
    run_tool([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
              '-w', str(out), str(source)], source, timeout=600, MMVIDT_WITH_CPU='0',
             MMVIDT_WITH_CUDA='0')
    return next(out.glob('mmvidt-*.whl'))


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp('site')
    run_tool([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(target),
              str(wheel)], target, timeout=300)
    return target


def mim(installed: Path, cwd: Path, *args: str) -> str:
    return run_tool([sys.executable, '-m', 'mim', *args], cwd, timeout=600,
                    PYTHONPATH=str(installed))


def test_wheel_carries_configs_tools_and_model_index(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(MIM_FILES) <= names
    configs = sorted(p.relative_to(REPO_ROOT) for p in (REPO_ROOT / 'configs').rglob('*.py'))
    assert {f'mmvidt/.mim/{p}' for p in configs} <= names


def test_mim_search_lists_every_indexed_config(installed, tmp_path):
    output = mim(installed, tmp_path, 'search', 'mmvidt')
    index = yaml.safe_load((REPO_ROOT / 'model-index.yml').read_text())
    names = [m['Name'] for f in index['Import']
             for m in yaml.safe_load((REPO_ROOT / f).read_text())['Models']]
    listed = set(line.split('config id: ')[1].strip() for line in output.splitlines()
                 if 'config id: ' in line)
    assert listed == set(names)
    assert 'coco/box_ap                 40.4' in output  # ViDT Swin-nano, official README


def test_mim_train_and_test_a_packaged_config_by_name(installed, shapes_root):
    output = mim(installed, shapes_root, 'train', 'mmvidt', SHAPES_CONFIG, '--gpus', '0',
                 '--work-dir', 'mim_work', '--cfg-options', 'train_cfg.max_epochs=1',
                 'model.test_cfg.score_thr=0.0')
    assert f'.mim/configs/rexnet_det/{SHAPES_CONFIG}' in output  # found by name in the package
    assert '.mim/tools/train.py' in output and 'Epoch(train) [1]' in output
    checkpoint = shapes_root / 'mim_work' / 'epoch_1.pth'
    assert checkpoint.is_file()
    output = mim(installed, shapes_root, 'test', 'mmvidt', SHAPES_CONFIG, '--gpus', '0',
                 '--checkpoint', str(checkpoint), '--work-dir', 'mim_test',
                 '--cfg-options', 'model.test_cfg.score_thr=0.0')
    assert '.mim/tools/test.py' in output and 'coco/bbox_mAP' in output
