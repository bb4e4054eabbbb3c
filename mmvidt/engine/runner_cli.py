"""What tools/train.py and tools/test.py share: common flags, config loading, the runner."""
import argparse
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .cpu_dist import setup_cpu_distributed, teardown_distributed


def add_runner_args(parser: argparse.ArgumentParser, cfg_options_example: str) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``, as mmdet's tools take them."""
    parser.add_argument('--cfg-options',
                        nargs='+',
                        action=DictAction,
                        help=f'override config entries, e.g. {cfg_options_example}')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_runner_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` with the launcher, ``--cfg-options`` and the work dir applied
    (default ``./work_dirs/CONFIG_NAME``)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


@contextmanager
def distributed_runner(cfg: Config) -> Iterator[Runner]:
    """The runner of ``cfg`` (CPU-only distributed runs prepared first); the process group is
    destroyed on exit, before interpreter shutdown can abort gloo's threads."""
    setup_cpu_distributed(cfg)
    try:
        yield RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    finally:
        teardown_distributed()
