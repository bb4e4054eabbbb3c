"""Convert an official PiT (naver-ai/pit) or timm PiT checkpoint to mmvidt's layout.

    python tools/model_converters/pit2mmvidt.py pit_s_809.pth pit-s_in1k_mmvidt.pth --arch s

The output ``{'state_dict': {'backbone.*', 'head.*'}}`` loads into the ``configs/pit`` classifiers
and, with ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``, into detectors.
"""
import argparse
import sys

from mmvidt.official.pit import convert_pit
from mmvidt.utils import (check_backbone_part, read_checkpoint, run_tool, save_converted,
                          state_dict_of)
from mmvidt.models.backbones.pit import PiT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official or timm PiT checkpoint (.pth)')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    parser.add_argument('--arch',
                        choices=sorted(PiT.arch_zoo),
                        help='check the converted backbone keys and shapes against this PiT arch')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    converted = convert_pit(state_dict_of(read_checkpoint(args.src), args.src), source=args.src)
    if args.arch:
        # The distilled variants differ only by a second token (and head).
        distilled = converted['backbone.cls_token'].shape[1] == 2
        backbone = PiT(arch=args.arch, distilled=distilled)
        check_backbone_part(converted, backbone, args.src)
    save_converted(converted, args.dst, args.src, converter='mmvidt.official.pit',
                   force=args.force)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
