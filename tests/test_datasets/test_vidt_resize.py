"""ViDTResize: the official resize rule, field consistency, and the COCO ViDT pipelines."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmvidt  # noqa: F401
from mmvidt.datasets.transforms import ViDTResize, vidt_resize_shape

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'datasets'


@pytest.mark.parametrize(
    'size, short_side, max_size, expected',
    [
        # spec example: int(800 * 640 / 480) = 1066 -> 1056 (mmdet keep-ratio: 1067)
        ((640, 480), 800, 1333, (1056, 800)),
        # portrait, odd sizes: int(800 * 517 / 333) = 1242 -> 1232
        ((333, 517), 800, 1333, (800, 1232)),
        # short side already equals s: only the flooring (1000 -> 992)
        ((1000, 800), 800, 1333, (992, 800)),
        ((801, 803), 801, None, (800, 800)),
        # max-size branch: s = round(1333 * 500 / 2000) = 333, long = int(333 * 4) = 1332
        ((2000, 500), 800, 1333, (1328, 320)),
        # max-size branch landing on the short side (333): equal branch, floors 1333 and 333
        ((1333, 333), 800, 1333, (1328, 320)),
        # no max size: the long side is unbounded (crop branch resizes)
        ((2000, 500), 600, None, (2400, 592)),
        # square and upscaling from tiny odd sizes
        ((37, 37), 100, None, (96, 96)),
        ((17, 29), 50, 1333, (48, 80)),
    ])
def test_resize_rule(size, short_side, max_size, expected):
    assert vidt_resize_shape(*size, short_side, max_size) == expected


def test_resize_rule_errors():
    with pytest.raises(ValueError, match='shorter than 16'):
        vidt_resize_shape(40, 30, 15, None)
    with pytest.raises(ValueError, match='must be positive'):
        vidt_resize_shape(0, 30, 800, 1333)
    with pytest.raises(ValueError, match='short_side'):
        ViDTResize(short_side=[])
    with pytest.raises(ValueError, match='max_size'):
        ViDTResize(short_side=800, max_size=0)


def _rect_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    masks = np.zeros((len(boxes), height, width), dtype=np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        mask[y1:y2, x1:x2] = 1
    return masks


def _sample(height: int = 480, width: int = 640, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    boxes = np.array([[10, 20, 200, 100], [300, 50, 640, 480], [0, 0, 33, 47]], dtype=np.float32)
    return dict(img=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                img_shape=(height, width),
                ori_shape=(height, width),
                gt_bboxes=HorizontalBoxes(boxes),
                gt_bboxes_labels=np.array([0, 1, 2]),
                gt_ignore_flags=np.zeros(3, dtype=bool),
                gt_masks=BitmapMasks(_rect_masks(boxes, height, width), height, width),
                gt_seg_map=rng.integers(0, 5, (height, width), dtype=np.uint8))


def test_transform_rescales_every_field_like_the_official_code():
    results = ViDTResize(short_side=800, max_size=1333)(_sample())
    assert results['img'].shape == (800, 1056, 3)
    assert results['img_shape'] == (800, 1056)
    assert results['scale_factor'] == pytest.approx((1056 / 640, 800 / 480))
    assert results['keep_ratio'] is False
    assert results['gt_seg_map'].shape == (800, 1056)
    np.testing.assert_allclose(results['homography_matrix'],
                               np.diag([1056 / 640, 800 / 480, 1.0]),
                               rtol=1e-6)

    # boxes: scaled by the actual per-axis ratios (official: boxes * (rw, rh, rw, rh))
    source = _sample()
    expected = source['gt_bboxes'].tensor * torch.tensor([1056 / 640, 800 / 480] * 2)
    torch.testing.assert_close(results['gt_bboxes'].tensor, expected)

    # masks: official legacy-nearest interpolate then > 0.5
    official_masks = F.interpolate(torch.from_numpy(source['gt_masks'].masks)[:, None].float(),
                                   (800, 1056),
                                   mode='nearest')[:, 0] > 0.5
    np.testing.assert_array_equal(results['gt_masks'].masks.astype(bool), official_masks.numpy())

    # image: the official interpolation (torchvision resizing a PIL image = PIL bilinear)
    official_img = np.asarray(
        Image.fromarray(source['img']).resize((1056, 800), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(results['img'], official_img)


@pytest.mark.parametrize('width, height', [(640, 480), (500, 375), (427, 640), (640, 427)])
def test_masks_resized_like_official_nearest(width, height):
    """cv2's nearest differs from torch's legacy nearest for common COCO sizes (500x375)."""
    rng = np.random.default_rng(width)
    masks = (rng.random((3, height, width)) > 0.5).astype(np.uint8)
    results = dict(img=np.zeros((height, width, 3), dtype=np.uint8),
                   gt_masks=BitmapMasks(masks, height, width))
    results = ViDTResize(short_side=800, max_size=1333)(results)
    new_w, new_h = vidt_resize_shape(width, height, 800, 1333)
    official = F.interpolate(torch.from_numpy(masks)[:, None].float(), (new_h, new_w),
                             mode='nearest')[:, 0] > 0.5
    assert results['gt_masks'].masks.shape == (3, new_h, new_w)
    np.testing.assert_array_equal(results['gt_masks'].masks, official.numpy().astype(np.uint8))


def test_empty_masks():
    results = dict(img=np.zeros((480, 640, 3), dtype=np.uint8),
                   gt_masks=BitmapMasks(np.zeros((0, 480, 640), dtype=np.uint8), 480, 640))
    results = ViDTResize(short_side=800, max_size=1333)(results)
    assert results['gt_masks'].masks.shape == (0, 800, 1056)


def test_pillow_backend_antialiases_when_shrinking():
    """The official (PIL) downscaling antialiases; cv2 bilinear does not: the outputs differ."""
    sample = _sample(height=1600, width=1200)
    pil = ViDTResize(short_side=400, backend='pillow')(dict(sample))['img']
    cv2 = ViDTResize(short_side=400, backend='cv2')(dict(_sample(height=1600, width=1200)))['img']
    assert pil.shape == cv2.shape == (528, 400, 3)
    official = np.asarray(
        Image.fromarray(sample['img']).resize((400, 528), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pil, official)
    assert np.abs(pil.astype(int) - cv2.astype(int)).mean() > 5


def test_random_short_side():
    transform = ViDTResize(short_side=[480, 512, 800], max_size=1333)
    np.random.seed(0)
    heights = {transform(_sample())['img_shape'][0] for _ in range(30)}
    assert heights == {480, 512, 800}


def _pipeline(config: str, key: str) -> list:
    """The config's pipeline without file loading (the samples are built in memory)."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(CONFIGS / config)
    return [
        TRANSFORMS.build(t) for t in cfg[key]
        if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs')
    ]


@pytest.mark.parametrize('config', ['coco_detection_vidt.py', 'coco_instance_vidt.py'])
def test_train_pipeline_keeps_boxes_and_masks_consistent(config):
    pipeline = _pipeline(config, 'train_pipeline')
    np.random.seed(1)
    short_sides = set(range(480, 801, 16))
    # output sizes of the branch without cropping (the sample is 640x480)
    plain_sizes = {vidt_resize_shape(640, 480, s, 1333) for s in short_sides}
    seen_crop = seen_plain = False
    for seed in range(12):
        results = _sample(seed=seed)
        for transform in pipeline:
            results = transform(results)
        height, width = results['img'].shape[:2]
        assert height % 16 == 0 and width % 16 == 0
        assert min(height, width) in short_sides or max(height, width) <= 1333
        assert results['img_shape'] == (height, width)
        boxes = results['gt_bboxes'].tensor.numpy()
        masks = results['gt_masks'].masks
        assert len(boxes) == len(masks) == len(results['gt_bboxes_labels'])
        # Every mask is the resized (and cropped) rectangle of its box. Nearest resizing moves a
        # mask edge by < 1 px per resize, scaled by the later resizes (<= 800 / 384): < 3.1 px.
        for box, mask in zip(boxes, masks):
            ys, xs = np.nonzero(mask)
            assert len(xs), 'an instance whose box survived lost its whole mask'
            np.testing.assert_allclose(
                [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=3.1)
        seen_plain |= (width, height) in plain_sizes
        seen_crop |= (width, height) not in plain_sizes
    assert seen_crop and seen_plain


def test_test_pipeline_uses_s800_m1333():
    pipeline = _pipeline('coco_detection_vidt.py', 'test_pipeline')
    assert [type(t) for t in pipeline] == [ViDTResize]
    results = pipeline[0](_sample())
    assert results['img_shape'] == (800, 1056)


@pytest.mark.parametrize('image, problem', [
    (np.zeros((0, 0, 3), np.uint8), r'image of shape \(0, 0, 3\) \(HWC\) has no pixels'),
    (np.zeros((12, 0, 3), np.uint8), r'image of shape \(12, 0, 3\) \(HWC\) has no pixels'),
    (np.zeros((32, 48), np.uint8), r'image of shape \(32, 48\) is not HWC'),
])
def test_degenerate_images_are_named(image, problem):
    transform = ViDTResize(short_side=32, max_size=64)
    with pytest.raises(ValueError, match=rf'^ViDTResize: photos/cat.jpg: {problem}'):
        transform(dict(img=image, img_path='photos/cat.jpg', img_shape=image.shape[:2]))
    with pytest.raises(ValueError, match=rf'^ViDTResize: image id 7: {problem}'):
        transform(dict(img=image, img_path=None, img_id=7, img_shape=image.shape[:2]))
