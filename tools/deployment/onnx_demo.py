"""Detect objects with an exported ONNX graph (onnxruntime) and save the drawing as PNG.

    python tools/deployment/onnx_demo.py demo.jpg CONFIG vidt.onnx --out-dir outputs

Pre-processing is the config's own test pipeline and data preprocessor (mmdet's transforms,
without annotation loading), and the drawing is mmdet's visualizer, exactly as in
``tools/demo/image_demo.py``; only the network runs in onnxruntime. Boxes are mapped back to the
original image; ViDT+ masks (predicted at the network input size) are resized to it.
"""
import argparse
import os.path as osp
import sys

import mmcv
import numpy as np
import torch
from mmdet.registry import DATASETS, MODELS, VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmvidt  # noqa: F401  (registers mmvidt's transforms)
from mmvidt.deployment.onnx_export import run_onnx


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='the config the graph was exported from')
    parser.add_argument('onnx', help='exported graph (tools/deployment/pytorch2onnx.py)')
    parser.add_argument('--out-dir', default='outputs', help='output directory')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='draw predictions scoring at least this')
    return parser.parse_args()


def preprocess(cfg: Config, image_path: str):
    """(1, 3, H, W) network input and the data sample with the image metas."""
    steps = [step for step in cfg.test_dataloader.dataset.pipeline
             if step['type'] != 'LoadAnnotations']
    packed = Compose(steps)(dict(img_path=image_path, img_id=0))
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    data = preprocessor(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]),
                        False)
    return data['inputs'], data['data_samples'][0]


def to_original_image(outputs: dict, sample: DetDataSample) -> InstanceData:
    """Graph outputs of one image -> predictions on the original image."""
    instances = InstanceData()
    scale_w, scale_h = sample.metainfo['scale_factor']
    boxes = torch.from_numpy(outputs['bboxes'][0])
    instances.bboxes = boxes / boxes.new_tensor([scale_w, scale_h, scale_w, scale_h])
    instances.scores = torch.from_numpy(outputs['scores'][0])
    instances.labels = torch.from_numpy(outputs['labels'][0])
    if 'masks' in outputs:
        height, width = sample.metainfo['ori_shape']
        masks = outputs['masks'][0].astype(np.uint8)
        instances.masks = torch.from_numpy(np.stack([
            mmcv.imresize(mask, (width, height), interpolation='nearest') for mask in masks
        ]).astype(bool)) if len(masks) else torch.zeros((0, height, width), dtype=torch.bool)
    return instances


def main() -> int:
    args = parse_args()
    for path in (args.image, args.config, args.onnx):
        if not osp.isfile(path):
            print(f'error: file not found: {path}', file=sys.stderr)
            return 1
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    images, sample = preprocess(cfg, args.image)
    sample.pred_instances = to_original_image(run_onnx(args.onnx, images), sample)
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='onnx_demo'))
    dataset = cfg.test_dataloader.dataset  # class names / palette, as the dataset defines them
    visualizer.dataset_meta = {**getattr(DATASETS.get(dataset.type), 'METAINFO', {}),
                               **(dataset.get('metainfo') or {})}
    image = mmcv.imread(args.image, channel_order='rgb')
    out_file = osp.join(args.out_dir, osp.splitext(osp.basename(args.image))[0] + '.png')
    visualizer.add_datasample('onnx', image, data_sample=sample, draw_gt=False, show=False,
                              pred_score_thr=args.pred_score_thr, out_file=out_file)
    print(f'saved {out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
