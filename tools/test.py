"""Evaluate a checkpoint with an mmdet-style config (mmvidt modules registered).

Examples::

    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG CHECKPOINT --out results.pkl --show-dir vis
    python tools/test.py CONFIG CHECKPOINT --amp   # autocast: bfloat16 on CPU, float16 on GPUs
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmengine.config import Config

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.engine import (add_runner_args, distributed_runner, load_runner_config,
                           parse_runner_args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='directory for the evaluation metrics (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--out',
                        help='dump the raw predictions to this pickle file (.pkl / .pickle)')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument(
        '--show-dir',
        help='save images with drawn predictions to this directory, relative to the run\'s '
        'timestamped log folder inside the work dir')
    parser.add_argument('--wait-time',
                        type=float,
                        default=2,
                        help='seconds each shown image stays on screen')
    parser.add_argument('--amp',
                        action='store_true',
                        help='mixed-precision inference (the test loop runs under autocast: '
                        'bfloat16 on CPU, float16 with CUDA)')
    add_runner_args(parser, 'test_dataloader.batch_size=1')
    return parse_runner_args(parser)


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or dict(type='TestLoop'), fp16=True)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    return cfg


def main() -> None:
    args = parse_args()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out}')
    with distributed_runner(build_config(args)) as runner:
        if args.out is not None:
            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        runner.test()


if __name__ == '__main__':
    main()
