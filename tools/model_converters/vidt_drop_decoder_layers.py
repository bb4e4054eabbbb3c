"""Decoding-layer drop: write a ViDT checkpoint with fewer decoder layers (VIDT.md §3).

    python tools/model_converters/vidt_drop_decoder_layers.py vidt_nano_50.pth \
        vidt_nano_50_4dec.pth --num-layers 4

The input is an mmvidt checkpoint (``state_dict``) or an official ViDT one (``model``, converted
to mmvidt keys on the way). Decoder layers ``>= num_layers`` and prediction heads
``> num_layers`` are removed; the result loads strictly into the same config built with
``neck.decoder.num_layers=num_layers`` (e.g. ``configs/vidt_layer_drop``).
"""
import argparse
import os.path as osp
import sys

import torch

from mmvidt.converters.state_dict_utils import save_checkpoint_file
from mmvidt.converters.vidt_detector import convert_vidt_detector
from mmvidt.converters.vidt_layer_drop import drop_decoder_layers, num_decoder_layers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='mmvidt or official ViDT checkpoint (.pth)')
    parser.add_argument('dst', help='mmvidt checkpoint to write')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    parser.add_argument('--num-layers', type=int, required=True,
                        help='decoder layers to keep (official README rows: 4 of 6)')
    args = parser.parse_args()
    if osp.abspath(args.src) == osp.abspath(args.dst):
        parser.error('dst must differ from src')
    with torch.serialization.safe_globals([argparse.Namespace]):  # official 'args' entry
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    try:
        if 'state_dict' in checkpoint:
            state_dict = checkpoint['state_dict']
        elif 'model' in checkpoint:
            state_dict = convert_vidt_detector(checkpoint['model'], source=args.src)
        else:
            raise ValueError(f"{args.src}: expected a 'state_dict' (mmvidt) or 'model' "
                             f'(official) entry, found {sorted(checkpoint)}')
        total = num_decoder_layers(state_dict)
        reduced = drop_decoder_layers(state_dict, args.num_layers)
    except ValueError as exc:  # incl. StateDictMismatchError
        print(f'error: {exc}', file=sys.stderr)
        return 1
    meta = dict(converted_from=osp.basename(args.src),
                decoder_layers=f'{args.num_layers} of {total}')
    save_checkpoint_file(dict(state_dict=reduced, meta=meta), args.dst, args.src, args.force)
    print(f'kept {args.num_layers} of {total} decoder layers: wrote {len(reduced)} tensors '
          f'to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
