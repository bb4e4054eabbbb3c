"""Detect objects in images and save the visualised predictions as PNG files.

Example::

    python tools/demo/image_demo.py demo.jpg configs/vidt/vidt_swin-nano_8xb2-50e_coco.py \
        --weights vidt_nano_50_mmvidt.pth --out-dir outputs

writes ``outputs/demo.png`` (predictions drawn) and ``outputs/preds/demo.json`` (raw predictions).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List

import mmcv
from mmdet.apis import DetInferencer

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.utils import run_tool
from mmvidt.utils.image_checks import check_image_shape

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='model config file')
    parser.add_argument('--weights', required=True, help='checkpoint file')
    parser.add_argument('--out-dir', default='outputs', help='output directory')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--pred-score-thr',
                        type=float,
                        default=0.3,
                        help='draw predictions scoring at least this')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    return parser.parse_args()


def list_images(inputs: str) -> List[str]:
    """``inputs`` itself, or the image files of the folder ``inputs`` in sorted order."""
    if not osp.isdir(inputs):
        if not osp.isfile(inputs):
            raise FileNotFoundError(f'input image or folder not found: {inputs}')
        return [inputs]
    paths = sorted(
        osp.join(inputs, name) for name in os.listdir(inputs)
        if name.lower().endswith(IMG_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f'no image files ({", ".join(IMG_EXTENSIONS)}) in {inputs}')
    return paths


def check_images(paths: List[str]) -> None:
    """Refuse, naming the file, an image that does not decode or has no pixels."""
    for path in paths:
        try:
            image = mmcv.imread(path)
        except Exception:  # the decoders' errors for bytes that are no image (e.g. cv2.error)
            image = None
        if image is None:
            raise ValueError(f'{path}: not a readable image file')
        check_image_shape(image.shape, 'HWC', path)


def main() -> None:
    args = parse_args()
    paths = list_images(args.inputs)
    check_images(paths)
    inferencer = DetInferencer(model=args.config, weights=args.weights, device=args.device)
    # The inferencer would save the drawings under the input's own extension; keep its JSON
    # predictions and write the drawings as lossless PNG here.
    results = inferencer(paths,
                         batch_size=args.batch_size,
                         pred_score_thr=args.pred_score_thr,
                         return_vis=True,
                         no_save_vis=True,
                         no_save_pred=False,
                         out_dir=args.out_dir)
    for path, vis in zip(paths, results['visualization']):
        stem = osp.splitext(osp.basename(path))[0]
        out_file = osp.join(args.out_dir, f'{stem}.png')
        mmcv.imwrite(mmcv.rgb2bgr(vis), out_file)
        print(f'saved {out_file}')


if __name__ == '__main__':
    sys.exit(run_tool(main))
