"""Detect objects in an image file with an exported graph, pre- and post-processed as in PyTorch.

:class:`OnnxDetector` runs the config's own test pipeline (mmdet's transforms, without loading
annotations, as mmdet's ``DetInferencer`` does) and data preprocessor, feeds the normalised image
to onnxruntime, and maps the graph's detections back to the original image the way the heads'
``predict(rescale=True)`` does: the boxes, normalised to the network input, are scaled to
``ori_shape`` (no clipping, official post-processing). The result is a ``DetDataSample`` that
mmdet's ``DetLocalVisualizer`` draws like the PyTorch demo's.

The input must be what PyTorch sees, so a graph that cannot take it is refused (one-line
``ValueError``), never padded: the PyTorch model marks padding in its mask and normalises boxes
to the unpadded image, the graph has no mask (deployment contract), so padding would change the
detections. A static graph takes exactly its export size; a dynamic one sides in
``MIN_SIDE..MAX_SIDE`` of :mod:`mmvidt.deployment.onnx_export`.
"""
from typing import Optional, Tuple, Union

import mmcv
import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch import Tensor

from .onnx_export import MAX_SIDE, MIN_SIDE, create_session, run_session


class OnnxDetector:
    """An exported graph (``tools/deployment/pytorch2onnx.py``) with the test pre-processing of
    the config it was exported from.

    Args:
        config: the model config (path or loaded).
        onnx_path: the ``.onnx`` file.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, config: Union[str, Config], onnx_path: str,
                 threads: Optional[int] = None) -> None:
        self.cfg = Config.fromfile(config) if isinstance(config, str) else config
        init_default_scope(self.cfg.get('default_scope', 'mmdet'))
        steps = [step for step in get_test_pipeline_cfg(self.cfg)
                 if step['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')]
        self.pipeline = Compose(steps)
        self.preprocessor = MODELS.build(self.cfg.model.data_preprocessor)
        self.onnx_path = onnx_path
        self.session = create_session(onnx_path, threads)
        #: (B, 3, H, W) of the graph input: ints where static, names where dynamic
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def preprocess(self, image_path: str) -> Tuple[Tensor, DetDataSample]:
        """(1, 3, H, W) normalised network input and the data sample with the image metas."""
        packed = self.pipeline(dict(img_path=image_path, img_id=0))
        data = self.preprocessor(dict(inputs=[packed['inputs']],
                                      data_samples=[packed['data_samples']]), False)
        images, sample = data['inputs'], data['data_samples'][0]
        if tuple(sample.batch_input_shape) != tuple(sample.img_shape):
            raise ValueError(f'the data_preprocessor pads {image_path} from {sample.img_shape} '
                             f'to {sample.batch_input_shape}; the graph has no padding mask '
                             f'(set pad_size_divisor=1 in the config)')
        return images, sample

    def check_input(self, images: Tensor, image_path: str) -> None:
        """Refuse an input the graph was not exported for (see the module docstring)."""
        shape = tuple(images.shape)
        if all(isinstance(dim, int) for dim in self.input_shape):
            if shape != self.input_shape:
                raise ValueError(
                    f'{self.onnx_path} is a static graph of input {_dims(self.input_shape)}, '
                    f'but the test pipeline gives {_dims(shape)} for {image_path} (padding would '
                    f'change the detections): export with --dynamic or --shape '
                    f'{shape[2]} {shape[3]}')
        elif not all(MIN_SIDE <= side <= MAX_SIDE for side in shape[2:]):
            raise ValueError(f'{self.onnx_path} is a dynamic graph of sides {MIN_SIDE}..'
                             f'{MAX_SIDE} px, but the test pipeline gives {_dims(shape)} for '
                             f'{image_path}: export a static graph with --shape {shape[2]} '
                             f'{shape[3]}')

    def __call__(self, image_path: str) -> DetDataSample:
        """Detections of one image file on the original image, as ``pred_instances`` of the
        data sample (``scores``, ``labels``, ``bboxes`` and for ViDT+ ``masks``)."""
        images, sample = self.preprocess(image_path)
        self.check_input(images, image_path)
        sample.pred_instances = to_original_image(run_session(self.session, images), sample)
        return sample


def _dims(shape) -> str:
    return 'x'.join(map(str, shape))


def to_original_image(outputs: dict, sample: DetDataSample) -> InstanceData:
    """Graph outputs of a batch of one -> detections on the original image (padding rows,
    label -1, dropped).

    Boxes: input pixels / ``img_shape`` * ``ori_shape`` per axis, as ``predict(rescale=True)``
    scales the normalised boxes to ``ori_shape``. ViDT+ masks, pasted at the input size by the
    graph, are resized to ``ori_shape`` (nearest), where ``predict`` pastes them at ``ori_shape``
    directly: they may differ on the contours.
    """
    input_h, input_w = sample.metainfo['img_shape']
    height, width = sample.metainfo['ori_shape']
    real = outputs['labels'][0] >= 0  # padding rows (label -1) are no detections
    boxes = torch.from_numpy(outputs['bboxes'][0][real])
    instances = InstanceData()
    instances.bboxes = boxes / boxes.new_tensor([input_w, input_h] * 2) * boxes.new_tensor(
        [width, height] * 2)
    instances.scores = torch.from_numpy(outputs['scores'][0][real])
    instances.labels = torch.from_numpy(outputs['labels'][0][real])
    if 'masks' in outputs:
        masks = outputs['masks'][0][real].astype(np.uint8)
        instances.masks = torch.from_numpy(np.stack([
            mmcv.imresize(mask, (width, height), interpolation='nearest') for mask in masks
        ]).astype(bool)) if len(masks) else torch.zeros((0, height, width), dtype=torch.bool)
    return instances
