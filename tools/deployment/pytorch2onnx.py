"""Export a detector (ViDT family, mmdet detectors with mmvidt backbones) to ONNX, verified with
onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG --checkpoint CKPT --out vidt.onnx \
        --shape 800 928 [--dynamic] [--opset 18] [--msda-backend pytorch] [--force]

The graph follows the deployment contract of :mod:`mmvidt.deployment.deployable_detector`:
input ``images`` (B, 3, H, W) float32 normalised as the config's data_preprocessor does it;
outputs ``scores`` (B, K), ``labels`` (B, K) int64, ``bboxes`` (B, K, 4) xyxy in input pixels
and, for ViDT+ instance configs, ``masks`` (B, K, H, W) bool. Exportable: ViDT, ViDT+, ViDT
without neck, and mmdet's RetinaNet, FCOS and Faster R-CNN (e.g. ``configs/pit_det``,
``configs/rexnet_det``), whose rows past their detections are padding (score 0, label -1, box 0),
DINO and Deformable DETR (the K best query-class pairs, no padding).
``--dynamic`` makes B, H and W dynamic (sides 225..4096). Multi-scale deformable attention is
exported as ``GridSample`` (opset >= 16); ``--msda-backend`` chooses what the PyTorch model that
the file is checked against runs (``pytorch`` reference or a compiled kernel; ``auto`` is
refused). The exported file is
checked with onnxruntime before it is kept (``--shape`` and, when dynamic, a second size and
batch); an existing ``--out`` is replaced only with ``--force``.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import torch
from mmdet.apis import init_detector

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.deployment import build_deployable
from mmvidt.deployment.msda_export import EXPORTABLE_MSDA_BACKENDS
from mmvidt.deployment.onnx_export import MIN_SIDE, ExportCheckError, export_onnx


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='mmvidt model config')
    parser.add_argument('--checkpoint', required=True, help='mmvidt checkpoint of the model')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=(800, 928),
                        help='height and width of the example input (default 800 928)')
    parser.add_argument('--batch', type=int, default=1, help='batch size of the example input')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch size, height and width')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (>= 16)')
    parser.add_argument('--msda-backend', default='pytorch',
                        help=f'MSDA backend of the PyTorch model: one of '
                        f'{EXPORTABLE_MSDA_BACKENDS} (default pytorch)')
    parser.add_argument('--force', action='store_true', help='replace an existing --out')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if osp.exists(args.out) and not args.force:
        print(f'error: {args.out} exists; pass --force to replace it', file=sys.stderr)
        return 1
    height, width = args.shape
    try:
        model = init_detector(args.config, args.checkpoint, device='cpu')
        deployable = build_deployable(model, args.msda_backend)
        # a dynamic graph is traced on a batch of >= 2 and checked on another batch and size
        batch = max(args.batch, 2) if args.dynamic else args.batch
        images = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
        checks = [(batch + 1, max(MIN_SIDE, height * 3 // 4), max(MIN_SIDE, width * 5 // 4))
                  ] if args.dynamic else []
        directory = osp.dirname(osp.abspath(args.out))
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            tmp_path = osp.join(tmp, osp.basename(args.out))
            diffs = export_onnx(deployable, images, tmp_path, dynamic=args.dynamic,
                                opset=args.opset, check_shapes=checks)
            os.replace(tmp_path, args.out)
    except (ExportCheckError, TypeError, ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    for shape, per_output in diffs.items():
        report = ', '.join(f'{name} {value:.2e}' for name, value in per_output.items())
        print(f'onnxruntime vs PyTorch at {shape}: max diff {report}')
    print(f'wrote {args.out} (outputs: {", ".join(deployable.output_names)}; '
          f'{deployable.num_detections} detections per image)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
