"""The bundled synthetic shapes dataset: determinism, annotation/pixel consistency, mmdet use."""
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mmvidt.datasets.shapes import (CLASSES, PRESETS, SPLITS, UPRIGHT_ANGLE, circumradius,
                                    generate_dataset, generate_image, image_rng, rasterize_shape)
from mmvidt.utils import run_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
NUM_IMAGES = {'train': 6, 'val': 4}
SEED = 0


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('shapes')
    generate_dataset(root, NUM_IMAGES['train'], NUM_IMAGES['val'], SEED)
    return root


@pytest.fixture(scope='module')
def cocos(shapes_root) -> Dict[str, COCO]:
    return {split: COCO(str(shapes_root / 'annotations' / f'{split}.json')) for split in SPLITS}


def _tree_bytes(root: Path) -> Dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def make_shapes() -> ModuleType:
    """The CLI script, imported in-process (a subprocess would re-import the whole stack)."""
    path = REPO_ROOT / 'tools' / 'dataset_converters' / 'make_shapes.py'
    spec = importlib.util.spec_from_file_location('make_shapes', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reproduces_the_same_bytes(shapes_root, tmp_path, make_shapes, monkeypatch):
    out = tmp_path / 'cli'
    monkeypatch.setattr(sys, 'argv', ['make_shapes.py', '--out', str(out), '--num-train', '6',
                                      '--num-val', '4', '--seed', str(SEED)])
    make_shapes.main()
    expected = _tree_bytes(shapes_root)
    assert sorted(expected) == (['annotations/train.json', 'annotations/val.json'] +
                                [f'train/{i:06d}.png' for i in range(6)] +
                                [f'val/{i:06d}.png' for i in range(4)])
    assert _tree_bytes(out) == expected


def test_cli_rejects_negative_counts(tmp_path, make_shapes, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['make_shapes.py', '--out', str(tmp_path),
                                      '--num-train', '-1'])
    with pytest.raises(SystemExit) as exit_info:
        make_shapes.parse_args()
    assert exit_info.value.code == 2
    assert "--num-train: must be >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(ValueError, match='seed'):
        generate_dataset(tmp_path, 1, 1, seed=-3)


def test_other_seed_changes_every_file(shapes_root, tmp_path):
    generate_dataset(tmp_path, NUM_IMAGES['train'], NUM_IMAGES['val'], SEED + 1)
    reference, other = _tree_bytes(shapes_root), _tree_bytes(tmp_path)
    assert sorted(other) == sorted(reference)
    assert all(other[name] != reference[name] for name in reference)


def test_split_does_not_depend_on_the_other_split(shapes_root, tmp_path):
    generate_dataset(tmp_path, 2, 7, SEED)
    reference, other = _tree_bytes(shapes_root), _tree_bytes(tmp_path)
    for name in ('train/000000.png', 'train/000001.png', 'val/000000.png', 'val/000003.png'):
        assert other[name] == reference[name], name


def test_existing_output_is_refused_and_force_touches_only_generated_files(
        shapes_root, tmp_path, make_shapes, monkeypatch, capsys):
    out = tmp_path / 'out'
    generate_dataset(out, 3, 1, SEED)
    (out / 'train' / 'mine.png').write_bytes(b'user image')
    (out / 'notes.txt').write_text('user notes')
    outside = tmp_path / 'outside.png'
    outside.write_bytes(b'precious')
    (out / 'train' / '000000.png').unlink()
    (out / 'train' / '000000.png').symlink_to(outside)
    before = _tree_bytes(out)

    def run(*flags) -> int:
        monkeypatch.setattr(sys, 'argv', ['make_shapes.py', '--out', str(out), '--num-train',
                                          '1', '--num-val', '1', '--seed', str(SEED), *flags])
        return run_tool(make_shapes.main)

    assert run() == 1
    assert f'error: {out} is not empty; pass --force' in capsys.readouterr().err
    assert _tree_bytes(out) == before and not any(p.name.endswith('.tmp') for p in out.rglob('*'))

    assert run('--force') == 0
    after = _tree_bytes(out)
    reference = _tree_bytes(shapes_root)
    # the generated files are replaced (the symbolic link itself, not the file it points to) ...
    assert not (out / 'train' / '000000.png').is_symlink()
    assert outside.read_bytes() == b'precious'
    for name in ('train/000000.png', 'val/000000.png'):
        assert after[name] == reference[name], name
    assert len(json.loads(after['annotations/train.json'])['images']) == 1
    # ... and nothing else is touched: the user's files and the earlier run's extra images stay
    for name in ('train/mine.png', 'notes.txt', 'train/000001.png', 'train/000002.png'):
        assert after[name] == before[name], name
    assert sorted(after) == sorted(before)

    (tmp_path / 'a_file').write_text('x')
    out = tmp_path / 'a_file'
    assert run('--force') == 1
    assert 'exists and is not a directory' in capsys.readouterr().err


def test_simple_preset_objects_are_whole_upright_apart_and_on_plain_ground():
    preset = PRESETS['simple']
    low, high = preset.image_side_range
    counts = []
    for index in range(40):
        image, shapes, masks = generate_image(image_rng(SEED, 'train', index), preset)
        height, width = image.shape[:2]
        assert height == width and low <= height <= high
        covered = np.zeros((height, width), dtype=bool)
        for shape, mask in zip(shapes, masks):
            # never occluded, never cut by the border: the visible mask is the whole shape
            assert (mask == rasterize_shape(shape, height, width)).all()
            radius = circumradius(shape.label, shape.size)
            cx, cy = shape.center
            assert radius <= cx <= width - radius and radius <= cy <= height - radius
            assert shape.angle == UPRIGHT_ANGLE.get(shape.label, 0.0)
            assert 0.1 * height <= shape.size <= 0.25 * height
            covered |= mask
        background = image[~covered]
        assert (background == background[0]).all(), 'plain background: one colour'
        counts.append(len(shapes))
    assert min(counts) >= 1 and max(counts) > 2


def test_preset_is_recorded_and_unknown_presets_are_refused(tmp_path, make_shapes, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['make_shapes.py', '--out', str(tmp_path / 'simple'),
                                      '--num-train', '1', '--num-val', '1', '--preset', 'simple'])
    make_shapes.main()
    info = json.loads((tmp_path / 'simple' / 'annotations' / 'val.json').read_text())['info']
    assert info['preset'] == 'simple'
    with pytest.raises(ValueError, match=r"unknown shapes preset 'easy'; choose from "
                                         r"\['cluttered', 'simple'\]"):
        generate_dataset(tmp_path / 'easy', 1, 1, SEED, 'easy')
    assert not (tmp_path / 'easy').exists()


def test_coco_structure(cocos, shapes_root):
    for split, coco in cocos.items():
        assert [(c['id'], c['name']) for c in coco.loadCats(coco.getCatIds())] == \
            [(i + 1, name) for i, name in enumerate(CLASSES)]
        images = coco.loadImgs(coco.getImgIds())
        assert len(images) == NUM_IMAGES[split]
        for info in images:
            with Image.open(shapes_root / split / info['file_name']) as png:
                assert png.mode == 'RGB' and png.size == (info['width'], info['height'])
            assert coco.getAnnIds(imgIds=info['id']), 'every image has at least one object'
        anns = coco.loadAnns(coco.getAnnIds())
        assert len({a['id'] for a in anns}) == len(anns)
        assert all(a['iscrowd'] == 0 and isinstance(a['segmentation']['counts'], str)
                   for a in anns)


def test_annotations_match_the_drawn_pixels(cocos, shapes_root):
    for split, coco in cocos.items():
        for index, info in enumerate(coco.loadImgs(coco.getImgIds())):
            with Image.open(shapes_root / split / info['file_name']) as png:
                pixels = np.asarray(png)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=info['id']))
            _, shapes, _ = generate_image(image_rng(SEED, split, index))
            assert [a['category_id'] for a in anns] == [s.label + 1 for s in shapes]
            coverage = np.zeros(pixels.shape[:2], dtype=np.int64)
            for ann, shape in zip(anns, shapes):
                mask = mask_utils.decode(ann['segmentation']).astype(bool)
                assert mask.sum() == ann['area'] > 0
                rows, cols = np.nonzero(mask)
                assert ann['bbox'] == [cols.min(), rows.min(), cols.max() - cols.min() + 1,
                                       rows.max() - rows.min() + 1]
                assert mask_utils.toBbox(ann['segmentation']).tolist() == ann['bbox']
                # every visible pixel carries the object's own (solid) colour
                assert (pixels[mask] == shape.color).all(), (split, ann['id'])
                coverage += mask
            assert coverage.max() == 1, 'visible masks of one image must not overlap'


def test_dataset_variety(cocos):
    anns = [a for coco in cocos.values() for a in coco.loadAnns(coco.getAnnIds())]
    assert {a['category_id'] for a in cocos['train'].loadAnns(cocos['train'].getAnnIds())} == \
        {1, 2, 3, 4}
    areas = np.array([a['area'] for a in anns])
    assert (areas < 100).any() and (areas < 32 * 32).sum() >= 5 and areas.max() > 64 * 64
    sizes = {(i['height'], i['width']) for c in cocos.values() for i in c.loadImgs(c.getImgIds())}
    assert len(sizes) == sum(NUM_IMAGES.values())
    assert any(h > w for h, w in sizes) and any(h < w for h, w in sizes)


def test_occluded_objects_are_annotated_by_their_visible_part(cocos):
    coco = cocos['train']
    occluded = 0
    for index, info in enumerate(coco.loadImgs(coco.getImgIds())):
        _, shapes, masks = generate_image(image_rng(SEED, 'train', index))
        for shape, mask in zip(shapes, masks):
            full = rasterize_shape(shape, info['height'], info['width'])
            assert not (mask & ~full).any()
            occluded += int(mask.sum() < full.sum())
    assert occluded > 0


@pytest.mark.parametrize('config, with_mask', [('shapes_detection.py', False),
                                               ('shapes_instance.py', True)])
def test_mmdet_dataset_and_pipeline(shapes_root, cocos, config, with_mask):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(REPO_ROOT / 'configs' / '_base_' / 'datasets' / config)
    assert cfg.val_evaluator.metric == (['bbox', 'segm'] if with_mask else 'bbox')
    for split, loader in (('train', cfg.train_dataloader), ('val', cfg.val_dataloader)):
        dataset = DATASETS.build(dict(loader.dataset, data_root=f'{shapes_root}/'))
        assert len(dataset) == NUM_IMAGES[split]
        assert dataset.metainfo['classes'] == CLASSES
        packed = dataset[0]
        coco, info = cocos[split], dataset.get_data_info(0)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info['img_id']))
        inputs, sample = packed['inputs'], packed['data_samples']
        assert inputs.dtype == torch.uint8 and inputs.shape[0] == 3
        assert max(inputs.shape[1:]) == 320
        assert sample.ori_shape == (info['height'], info['width'])
        gt = sample.gt_instances
        assert gt.labels.tolist() == [a['category_id'] - 1 for a in anns]
        assert ('masks' in gt) == with_mask
        if split == 'val':  # the test pipeline keeps boxes and masks at the original size
            xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
            assert gt.bboxes.tensor.tolist() == xyxy
            if with_mask:
                assert (gt.masks.areas == np.array([a['area'] for a in anns])).all()


def test_coco_metric_scores_ground_truth_perfectly(shapes_root, cocos):
    from mmdet.evaluation import CocoMetric
    metric = CocoMetric(ann_file=str(shapes_root / 'annotations' / 'val.json'),
                        metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=CLASSES)
    coco = cocos['val']
    samples = []
    for info in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info['id']))
        samples.append(dict(
            img_id=info['id'],
            ori_shape=(info['height'], info['width']),
            pred_instances=dict(
                bboxes=torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                                     (a['bbox'] for a in anns)]),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([a['category_id'] - 1 for a in anns]),
                masks=torch.from_numpy(np.stack([coco.annToMask(a) for a in anns]).astype(bool)),
            )))
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert results['coco/bbox_mAP'] == 1.0
    assert results['coco/segm_mAP'] == 1.0
