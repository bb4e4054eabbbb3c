"""ViDTDataPreprocessor: mmdet's preprocessing, plus clear errors for unusable images."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvidt  # noqa: F401
from mmvidt.models.data_preprocessors import ViDTDataPreprocessor

REPO_ROOT = Path(__file__).resolve().parents[2]
NORMALIZE = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


def batch(*images, paths=None):
    samples = []
    for i, image in enumerate(images):
        sample = DetDataSample()
        sample.set_metainfo(dict(img_path=paths[i] if paths else None, img_id=i,
                                 img_shape=tuple(image.shape[-2:])))
        samples.append(sample)
    return dict(inputs=list(images), data_samples=samples)


def test_finite_batches_are_preprocessed_exactly_as_mmdet_does():
    images = [torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8),
              torch.randint(0, 256, (3, 24, 16), dtype=torch.uint8)]
    ours = ViDTDataPreprocessor(**NORMALIZE, pad_size_divisor=8)(batch(*images))
    mmdet = DetDataPreprocessor(**NORMALIZE, pad_size_divisor=8)(batch(*images))
    assert torch.equal(ours['inputs'], mmdet['inputs']) and ours['inputs'].shape == (2, 3, 24, 32)
    assert [s.batch_input_shape for s in ours['data_samples']] == [(24, 32)] * 2


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_images_are_refused_by_default(bad):
    good, broken = torch.rand(3, 8, 8) * 255, torch.rand(3, 8, 8) * 255
    broken[1, 2, 3] = bad
    data = batch(good, broken, paths=['a.png', 'b.png'])
    with pytest.raises(ValueError, match=r'^b.png: NaN or Inf pixel values .* '
                                         r'data_preprocessor.check_finite=False'):
        ViDTDataPreprocessor(**NORMALIZE)(data)
    passed = ViDTDataPreprocessor(**NORMALIZE, check_finite=False)(data)['inputs']
    assert not torch.isfinite(passed[1]).all() and torch.isfinite(passed[0]).all()


@pytest.mark.parametrize('image, problem', [
    (torch.zeros(3, 0, 5), r'image of shape \(3, 0, 5\) \(CHW\) has no pixels'),
    (torch.zeros(1, 8, 8), r'image of shape \(1, 8, 8\) \(CHW\) has 1 channel\(s\), expected 3'),
    (torch.zeros(8, 8), r'image of shape \(8, 8\) is not CHW'),
])
def test_degenerate_images_are_named(image, problem):
    with pytest.raises(ValueError, match=rf'^c.png: {problem}'):
        ViDTDataPreprocessor(**NORMALIZE)(batch(image, paths=['c.png']))


def test_zero_std_is_a_config_error():
    with pytest.raises(ValueError, match=r'std must be positive and finite, got \[1.0, 0.0, 1.0\]'):
        ViDTDataPreprocessor(mean=[0., 0., 0.], std=[1., 0., 1.])


def test_mmvidt_detectors_refuse_nan_images_end_to_end():
    """The configs use it: inference on a NaN image used to give NaN boxes and scores."""
    from mmdet.apis import inference_detector, init_detector
    config = REPO_ROOT / 'configs' / 'vidt' / 'vidt_swin-pico_1xb4-40e_shapes.py'
    assert Config.fromfile(config).model.data_preprocessor.type == 'ViDTDataPreprocessor'
    init_default_scope('mmdet')
    model = init_detector(str(config), device='cpu')
    image = np.full((64, 64, 3), 100, np.float32)
    assert torch.isfinite(inference_detector(model, image).pred_instances.scores).all()
    image[5, 5, 0] = np.nan
    with pytest.raises(ValueError, match='^image id 0: NaN or Inf pixel values'):
        inference_detector(model, image)
    with pytest.raises(ValueError, match=r'^image id 0: image of shape \(1, 160, 160\)'):
        inference_detector(model, np.zeros((64, 64), np.uint8))  # a 2-D (grey) array
    for name in ('vidt-wo-neck_swin-ram.py', 'vidt-plus_swin-ram.py'):
        cfg = Config.fromfile(REPO_ROOT / 'configs' / '_base_' / 'models' / name)
        assert MODELS.build(cfg.model.data_preprocessor).check_finite
