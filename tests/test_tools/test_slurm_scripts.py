"""tools/slurm_train.sh / slurm_test.sh hand srun one task per GPU and mmvidt's tools the slurm
launcher (a stand-in srun records the command line: SLURM itself needs a cluster)."""
import os
import subprocess
from pathlib import Path

import pytest

from tool_utils import REPO_ROOT


@pytest.fixture
def fake_srun(tmp_path) -> Path:
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    return bin_dir


def run_script(script: str, args: list, fake_srun: Path, **env) -> list:
    log = fake_srun.parent / 'srun_args.txt'
    full_env = dict(os.environ, PATH=f'{fake_srun}{os.pathsep}{os.environ["PATH"]}',
                    SRUN_LOG=str(log), **env)
    proc = subprocess.run(['bash', str(REPO_ROOT / 'tools' / script), *args], env=full_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


def test_slurm_train_starts_one_task_per_gpu_on_every_node(fake_srun):
    args = run_script('slurm_train.sh', ['gpu', 'vidt_nano', 'CONFIG.py', 'work_dirs/x',
                                         '--auto-scale-lr'], fake_srun, GPUS='16',
                      SRUN_ARGS='--quotatype=auto --time=10')
    assert args[:8] == ['-p', 'gpu', '--job-name=vidt_nano', '--gres=gpu:8', '--ntasks=16',
                        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert args[8:10] == ['--quotatype=auto', '--time=10']
    assert args[11:] == ['-u', str(REPO_ROOT / 'tools' / 'train.py'), 'CONFIG.py', '--work-dir',
                         'work_dirs/x', '--launcher', 'slurm', '--auto-scale-lr']


def test_slurm_test_passes_the_checkpoint_and_options(fake_srun):
    args = run_script('slurm_test.sh', ['gpu', 'eval', 'CONFIG.py', 'ckpt.pth', '--cfg-options',
                                        'a=1'], fake_srun, GPUS='4', GPUS_PER_NODE='4')
    assert '--ntasks=4' in args and '--gres=gpu:4' in args
    assert args[-6:] == ['CONFIG.py', 'ckpt.pth', '--launcher', 'slurm', '--cfg-options', 'a=1']


def test_slurm_scripts_need_four_arguments(fake_srun):
    proc = subprocess.run(['bash', str(REPO_ROOT / 'tools' / 'slurm_train.sh'), 'gpu'],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'usage: bash' in proc.stderr
