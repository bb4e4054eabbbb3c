"""Decoding-layer drop: write a ViDT checkpoint with fewer decoder layers (ViDT paper Sec. 3.3).

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

from mmvidt.official.layer_drop import drop_decoder_layers, num_decoder_layers
from mmvidt.official.vidt_detector import convert_vidt_detector
from mmvidt.utils import read_checkpoint, run_tool, save_checkpoint_file, state_dict_of


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
    checkpoint = read_checkpoint(args.src)
    state_dict = state_dict_of(checkpoint, args.src)
    if 'model' in checkpoint:  # official layout: mmvidt keys first
        state_dict = convert_vidt_detector(state_dict, source=args.src)
    total = num_decoder_layers(state_dict)
    reduced = drop_decoder_layers(state_dict, args.num_layers)
    meta = dict(converted_from=osp.basename(args.src),
                decoder_layers=f'{args.num_layers} of {total}')
    save_checkpoint_file(dict(state_dict=reduced, meta=meta), args.dst, args.src, args.force)
    print(f'kept {args.num_layers} of {total} decoder layers: wrote {len(reduced)} tensors '
          f'to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
