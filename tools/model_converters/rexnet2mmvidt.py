"""Convert an official ReXNet / ReXNet-lite (clovaai/rexnet) or timm ReXNet checkpoint to mmvidt.

    python tools/model_converters/rexnet2mmvidt.py rexnetv1_1.0.pth rexnet-1.0_in1k_mmvidt.pth \
        --arch 1.0

The output ``{'state_dict': {'backbone.*', 'head.*'}}`` loads into the ``configs/rexnet``
classifiers and, with ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``,
into detectors.
"""
import argparse
import sys

from mmvidt.official.rexnet import convert_rexnet
from mmvidt.utils import (check_backbone_part, read_checkpoint, run_tool, save_converted,
                          state_dict_of)
from mmvidt.models.backbones.rexnet import ReXNet


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official or timm ReXNet checkpoint (.pth)')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    parser.add_argument('--arch',
                        choices=sorted(ReXNet.arch_zoo),
                        help='check the converted backbone keys and shapes against this arch')
    parser.add_argument('--depth-mult',
                        type=float,
                        default=1.0,
                        help='depth multiplier of the checkpoint (1.0 for all releases)')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    converted = convert_rexnet(state_dict_of(read_checkpoint(args.src), args.src),
                               depth_mult=args.depth_mult,
                               source=args.src)
    if args.arch:
        arch = dict(ReXNet.arch_zoo[args.arch], depth_mult=args.depth_mult)
        backbone = ReXNet(arch=arch)
        check_backbone_part(converted, backbone, args.src)
    save_converted(converted, args.dst, args.src, converter='mmvidt.official.rexnet',
                   force=args.force)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
