"""Detect objects with an exported ONNX graph (onnxruntime) and save the drawing as PNG.

    python tools/deployment/onnx_demo.py demo.jpg CONFIG vidt.onnx --out-dir outputs

Pre-processing is the config's own test pipeline and data preprocessor, the detections are mapped
back to the original image as ``predict(rescale=True)`` does, and the drawing is mmdet's
visualizer of the config, as in ``tools/demo/image_demo.py``; only the network runs in
onnxruntime (:class:`mmvidt.deployment.onnx_inference.OnnxDetector`). Class names and palette
are the config's test dataset's. A static graph takes only inputs of its export size (the tool
refuses others rather than padding them, which would change the detections); a dynamic graph
sides of 225..4096 px.
"""
import argparse
import os.path as osp
import sys

import mmcv
from mmdet.registry import DATASETS, VISUALIZERS
from mmengine.visualization import Visualizer

import mmvidt  # noqa: F401  (registers mmvidt's transforms)
from mmvidt.deployment.onnx_inference import OnnxDetector
from mmvidt.utils import run_tool


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='the config the graph was exported from')
    parser.add_argument('onnx', help='exported graph (tools/deployment/pytorch2onnx.py)')
    parser.add_argument('--out-dir', default='outputs', help='output directory')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='draw predictions scoring at least this')
    return parser.parse_args()


def build_visualizer(detector: OnnxDetector) -> Visualizer:
    """The config's visualizer (mmdet's DetLocalVisualizer by default) with the class names and
    palette of its test dataset."""
    cfg = detector.cfg.get('visualizer') or dict(type='DetLocalVisualizer')
    cfg = dict(cfg, name='onnx_demo')
    visualizer = VISUALIZERS.build(cfg)
    dataset = detector.cfg.test_dataloader.dataset
    visualizer.dataset_meta = {**getattr(DATASETS.get(dataset.type), 'METAINFO', {}),
                               **(dataset.get('metainfo') or {})}
    return visualizer


def main() -> int:
    args = parse_args()
    for path in (args.image, args.config, args.onnx):
        if not osp.isfile(path):
            raise FileNotFoundError(f'file not found: {path}')
    image = mmcv.imread(args.image, channel_order='rgb')
    if image is None:
        raise ValueError(f'{args.image}: not a readable image file')
    detector = OnnxDetector(args.config, args.onnx)
    sample = detector(args.image)
    out_file = osp.join(args.out_dir, osp.splitext(osp.basename(args.image))[0] + '.png')
    build_visualizer(detector).add_datasample('onnx', image, data_sample=sample, draw_gt=False,
                                              show=False, pred_score_thr=args.pred_score_thr,
                                              out_file=out_file)
    print(f'saved {out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
