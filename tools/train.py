"""Train a detector with an mmdet-style config (mmvidt modules registered).

Examples::

    python tools/train.py configs/vidt/vidt_swin-nano_8xb2-50e_coco.py --work-dir work_dirs/nano
    python tools/train.py CONFIG --resume                 # resume from the latest checkpoint
    python tools/train.py CONFIG --resume work_dirs/x/epoch_3.pth
    bash tools/dist_train.sh CONFIG 8 --amp --auto-scale-lr
"""
import argparse

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
                        help='mixed-precision training (AmpOptimWrapper)')
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


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    cfg = load_runner_config(args)

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

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
