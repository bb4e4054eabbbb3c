"""Train a detector with an mmdet-style config (mmvidt modules registered).

Examples::

    python tools/train.py configs/vidt/vidt_swin-nano_8xb2-50e_coco.py --work-dir work_dirs/nano
    python tools/train.py CONFIG --resume                 # resume from the latest checkpoint
    python tools/train.py CONFIG --resume work_dirs/x/epoch_3.pth
    python tools/train.py CONFIG --amp                    # bf16 autocast on CPU, fp16 on GPUs
    bash tools/dist_train.sh CONFIG 8 --amp --auto-scale-lr
"""
import argparse
from typing import Optional

import torch
from mmengine.config import Config

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.engine import (add_runner_args, distributed_runner, load_runner_config,
                           parse_runner_args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir', help='directory for logs and checkpoints (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--amp',
                        action='store_true',
                        help='mixed-precision training: AmpOptimWrapper (loss scaling) with CUDA, '
                        'AutocastOptimWrapper (bfloat16 autocast) on CPU')
    parser.add_argument('--amp-dtype',
                        choices=['float16', 'bfloat16'],
                        help='autocast dtype of --amp (default: float16 with CUDA, bfloat16 on '
                        'CPU, where float16 is not offered)')
    parser.add_argument('--auto-scale-lr',
                        action='store_true',
                        help='scale the lr by (total batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir when '
        'no path is given')
    add_runner_args(parser, 'train_cfg.max_epochs=12 optim_wrapper.optimizer.lr=2e-4')
    return parse_runner_args(parser)


def enable_amp(cfg: Config, dtype: Optional[str]) -> None:
    """Switch the optim wrapper of ``cfg`` to mixed precision for this machine.

    With CUDA: mmengine's ``AmpOptimWrapper`` (dynamic loss scaling; float16 unless ``dtype``).
    Without: mmvidt's ``AutocastOptimWrapper`` (bfloat16 autocast; ``AmpOptimWrapper`` asserts a
    GPU, and float16 training without loss scaling is not offered).
    """
    if cfg.optim_wrapper.get('type', 'OptimWrapper') in ('AmpOptimWrapper',
                                                          'AutocastOptimWrapper'):
        print('AMP training is already enabled in the config.')
        return
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
        if dtype is not None:
            cfg.optim_wrapper.dtype = dtype
        return
    if dtype == 'float16':
        raise ValueError('--amp-dtype float16 needs CUDA (loss scaling); on CPU use bfloat16')
    cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    cfg.optim_wrapper.dtype = 'bfloat16'


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    cfg = load_runner_config(args)

    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    elif args.amp_dtype is not None:
        raise ValueError('--amp-dtype needs --amp')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError(f'--auto-scale-lr needs auto_scale_lr.base_batch_size in the config '
                           f'{args.config}')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main() -> None:
    args = parse_args()
    with distributed_runner(build_config(args)) as runner:
        runner.train()


if __name__ == '__main__':
    main()
