"""Synthetic detection batches for the analysis tools (benchmark, FLOP count) and their tests."""
from typing import List, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData
from torch import Tensor


def synthetic_detection_batch(batch: int,
                              height: int,
                              width: int,
                              num_labels: int,
                              num_boxes: int = 5,
                              seed: int = 0,
                              device: str = 'cpu') -> Tuple[Tensor, List[DetDataSample]]:
    """A batch as a detector's ``data_preprocessor`` hands it over, with random ground truth.

    Images are standard-normal (normalised pixels) of one size, so there is no padding; every
    image has ``num_boxes`` boxes inside it with labels in ``[0, num_labels)`` and box-shaped
    instance masks (for heads that learn masks or token labels; others ignore them).

    Args:
        batch, height, width: B, H, W of the (B, 3, H, W) input.
        num_labels: number of dataset labels of the model.
        num_boxes: ground-truth boxes per image.
        seed: seed of the images and boxes.
        device: where the tensors go.

    Returns:
        ``(inputs, data_samples)`` for ``model(inputs, data_samples, mode=...)``.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, height, width, generator=generator)
    size = torch.tensor([width, height, width, height], dtype=torch.float32)
    samples = []
    for _ in range(batch):
        centres = torch.rand(num_boxes, 2, generator=generator) * 0.6 + 0.2
        sizes = torch.rand(num_boxes, 2, generator=generator) * 0.3 + 0.05
        boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1) * size
        masks = np.zeros((num_boxes, height, width), dtype=np.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.round().long().tolist()):
            mask[y0:y1, x0:x1] = 1
        sample = DetDataSample(metainfo=dict(img_shape=(height, width),
                                             ori_shape=(height, width),
                                             pad_shape=(height, width),
                                             batch_input_shape=(height, width),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=boxes.to(device),
            labels=torch.randint(0, num_labels, (num_boxes, ), generator=generator).to(device),
            masks=BitmapMasks(masks, height, width))
        samples.append(sample)
    return inputs.to(device), samples
