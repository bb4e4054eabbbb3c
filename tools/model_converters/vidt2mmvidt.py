"""Convert an official ViDT / ViDT+ checkpoint (naver-ai/vidt) into an mmvidt checkpoint.

    python tools/model_converters/vidt2mmvidt.py vidt_nano_50.pth vidt_nano_50_mmvidt.pth \
        --config configs/vidt/vidt_swin-nano_8xb2-50e_coco.py

The official file holds the detector under ``model`` (training checkpoints also hold ``args``,
the official options). With ``--config`` the converted weights are checked against that config's
model (every missing / unexpected key and shape mismatch is listed); with ``--save-config`` the
official options (if present) are translated into an mmvidt model config. ViDT+ training
checkpoints keep their IoU-aware / token-label / mask-vector heads unless ``--box-only`` (the
layout of the official box evaluation). The input is only read, and the output is written
atomically and never over an existing file unless ``--force``.
"""
import argparse
import os.path as osp
import pprint
import sys

from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvidt.official.vidt_plus import convert_vidt_checkpoint, vidt_plus_model_from_official_args
from mmvidt.utils import check_state_dict, read_checkpoint, run_tool, save_checkpoint_file


def load_official_checkpoint(path: str) -> dict:
    """Read an official checkpoint as data only (its ``args`` entry, an ``argparse.Namespace``,
    is one of the data types the safe loader accepts)."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or 'model' not in checkpoint:
        keys = list(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f'{path}: not an official ViDT checkpoint (expected a dict with a '
                         f"'model' entry, found {keys})")
    return checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='mmvidt checkpoint to write')
    parser.add_argument('--config', help='mmvidt config the weights must fit exactly')
    parser.add_argument('--save-config', metavar='PATH',
                        help='write the mmvidt model config translated from the official args')
    parser.add_argument('--box-only', action='store_true',
                        help='drop the ViDT+ training-only heads (IoU-aware, token label, vector)')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args()
    checkpoint = load_official_checkpoint(args.src)
    converted = convert_vidt_checkpoint(checkpoint['model'], args.src,
                                        keep_training_heads=not args.box_only)
    state_dict = converted.state_dict
    print(f"components: {', '.join(converted.components) or 'plain ViDT'}"
          + (f"; dropped: {', '.join(converted.dropped)}" if converted.dropped else ''))
    official_args = checkpoint.get('args')
    if args.config:
        init_default_scope('mmdet')
        cfg = Config.fromfile(args.config)
        cfg.model.backbone.pop('init_cfg', None)
        check_state_dict(state_dict, MODELS.build(cfg.model).state_dict(),
                         f'{args.src} converted for {args.config}')
    if args.save_config:
        if official_args is None:
            parser.error(f'{args.src} records no official args; pass --config instead')
        options = vars(official_args)
        if args.box_only:  # the config must match the weights: no training-only heads
            options = dict(options, iou_aware=False, token_label=False, with_vector=False)
        model = vidt_plus_model_from_official_args(options)
        with open(args.save_config, 'w') as f:
            f.write(f'model = {pprint.pformat(model, sort_dicts=False)}\n')
    meta = dict(converted_from=osp.basename(args.src))
    if official_args is not None:
        meta['official_args'] = {k: v for k, v in vars(official_args).items()
                                 if isinstance(v, (int, float, str, bool, list, type(None)))}
    save_checkpoint_file(dict(state_dict=state_dict, meta=meta), args.dst, args.src,
                         args.force)
    print(f'wrote {len(state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
