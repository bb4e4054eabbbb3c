"""Generate the bundled synthetic shapes dataset (COCO instance format).

Writes ``OUT/annotations/{train,val}.json`` and ``OUT/{train,val}/NNNNNN.png``. A non-empty ``OUT``
is refused unless ``--force``, which replaces the files of those names and touches nothing else.
The same arguments always give byte-identical files. ``--preset`` names how hard the scenes are
(``mmvidt.datasets.shapes.PRESETS``): ``cluttered`` (default) or ``simple`` (the ``make demo``
dataset).

Examples::

    python tools/dataset_converters/make_shapes.py --out data/shapes \
        --num-train 300 --num-val 60 --seed 0
    python tools/dataset_converters/make_shapes.py --preset simple --out data/shapes_simple
"""
import argparse
import sys
import time

from mmvidt.datasets.shapes import DEFAULT_PRESET, PRESETS, generate_dataset
from mmvidt.utils import run_tool


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/shapes', help='output directory')
    parser.add_argument(
        '--num-train', type=_non_negative, default=300, help='number of training images')
    parser.add_argument(
        '--num-val', type=_non_negative, default=60, help='number of validation images')
    parser.add_argument('--seed', type=_non_negative, default=0, help='random seed')
    parser.add_argument('--preset', choices=sorted(PRESETS), default=DEFAULT_PRESET,
                        help='scene difficulty (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out (replaces only the generated files)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    splits = generate_dataset(args.out, args.num_train, args.num_val, args.seed,
                              args.preset, overwrite=args.force)
    for split, coco in splits.items():
        print(f'{split}: {len(coco["images"])} images, {len(coco["annotations"])} objects')
    print(f'written to {args.out} in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    sys.exit(run_tool(main))
