"""Plot the learning curves of a training run: loss terms and validation mAP vs epoch.

Reads the scalars that mmengine's ``LocalVisBackend`` (the default visualizer backend of mmdet's
runtime config) writes to ``WORK_DIR/<timestamp>/vis_data/scalars.json`` and saves one PNG with
two panels: the final-level loss terms and the total loss, averaged over each epoch (log scale),
and every validation metric given by ``--metrics`` per evaluated epoch. An existing ``--out``
file is replaced only with ``--force``.

mmdet's ``tools/analysis_tools/analyze_logs.py`` draws one key family per figure, losses per
iteration on the same axes as metrics, and needs seaborn (not part of the mmdet install), hence
this script.

Example::

    python tools/analysis_tools/plot_curves.py work_dirs/shapes_demo --out curves.png
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DEFAULT_METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/segm_mAP')


def find_scalars(path: Path) -> Path:
    """``path`` itself if it is a file, else the newest ``*/vis_data/scalars.json`` under it."""
    if path.is_file():
        return path
    runs = sorted(path.glob('*/vis_data/scalars.json'))
    if not runs:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {path} (is it a work dir of '
                                'a run with LocalVisBackend?)')
    return runs[-1]


def read_scalars(path: Path) -> Tuple[Dict[str, Dict[int, List[float]]], Dict[str, Dict[int,
                                                                                          float]]]:
    """Training scalars ``{key: {epoch: [values]}}`` and validation ones ``{key: {epoch: v}}``.

    Training records carry ``epoch`` and ``iter``; validation records of an epoch-based loop
    carry the epoch as ``step`` and no ``iter``.
    """
    train: Dict[str, Dict[int, List[float]]] = defaultdict(lambda: defaultdict(list))
    val: Dict[str, Dict[int, float]] = defaultdict(dict)
    with path.open(encoding='utf-8') as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f'{path}:{number}: not a JSON line ({error.msg})') from None
            if 'iter' in record:
                for key, value in record.items():
                    train[key][record['epoch']].append(value)
            else:
                for key, value in record.items():
                    val[key][record['step']] = value
    return train, val


def loss_keys(train: Dict[str, Dict[int, List[float]]]) -> List[str]:
    """The total loss and the final-level loss terms (auxiliary ``d{level}.`` terms left out)."""
    terms = sorted(k for k in train if k.startswith('loss_'))
    return (['loss'] if 'loss' in train else []) + terms


def plot_curves(scalars: Path, out: Path, metrics: Sequence[str], title: str = '') -> None:
    """Draw the two panels of ``scalars`` into the PNG ``out``."""
    train, val = read_scalars(scalars)
    keys = loss_keys(train)
    if not keys:
        raise ValueError(f'{scalars} has no training losses (keys loss, loss_*)')
    shown = [m for m in metrics if m in val]
    if not shown:
        raise ValueError(f'{scalars} has none of the metrics {list(metrics)}; it has '
                         f'{sorted(k for k in val if "/" in k)}')
    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in keys:
        epochs = sorted(train[key])
        loss_axes.plot(epochs, [sum(train[key][e]) / len(train[key][e]) for e in epochs],
                       label=key, linewidth=2 if key == 'loss' else 1)
    loss_axes.set(xlabel='epoch', ylabel='mean training loss', yscale='log',
                  title='training losses (final level)')
    loss_axes.legend(fontsize=7)
    for metric in shown:
        epochs = sorted(val[metric])
        metric_axes.plot(epochs, [val[metric][e] for e in epochs], marker='o', label=metric)
    metric_axes.set(xlabel='epoch', ylabel='COCO AP', ylim=(0, 1), title='validation')
    metric_axes.legend(fontsize=7)
    for axes in (loss_axes, metric_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run', type=Path,
                        help='a work dir (its newest run is used) or a scalars.json file')
    parser.add_argument('--out', type=Path, required=True, help='PNG file to write')
    parser.add_argument('--metrics', nargs='+', default=list(DEFAULT_METRICS),
                        help='validation metrics to draw (those present in the run)')
    parser.add_argument('--title', default='', help='figure title')
    parser.add_argument('--force', action='store_true', help='replace an existing --out file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.out.exists() and not args.force:
        raise SystemExit(f'{args.out} exists; pass --force to replace it')
    scalars = find_scalars(args.run)
    plot_curves(scalars, args.out, args.metrics, args.title)
    print(f'curves of {scalars} saved to {args.out}')


if __name__ == '__main__':
    main()
