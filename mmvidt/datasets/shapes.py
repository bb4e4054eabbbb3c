"""Deterministic synthetic COCO dataset of simple shapes, for demos and tests.

Each image is a background with a few solid-coloured circles, squares, triangles and rings of
random size, rotation and colour. Objects are painted in order, so later objects occlude earlier
ones; every annotation describes the *visible* part of its object. A candidate object that would
hide too much of an earlier one is not painted at all, so every painted pixel belongs to exactly
one annotation.

How hard the scenes are is a named :class:`ShapesPreset` (``PRESETS``):

* ``cluttered`` (the default): 160-320 px images of any aspect ratio 0.5-2 on textured
  backgrounds (gradient, stripes or smooth value noise between two random colours), up to 8
  objects from a few pixels to a third of the image, occluding each other down to 30 % of their
  area, cut by the image border. Mostly small objects: a benchmark for a pretrained detector.
* ``simple``: square 112-144 px images on plain single-colour backgrounds, up to 6 candidate
  objects (about 2 per image are painted) whose ``Shape.size`` is 10-25 % of the image side,
  upright, never overlapping (a candidate that would touch an earlier object is dropped) and
  always entirely inside the image. Learnable from scratch in minutes on a CPU: the
  ``make demo`` dataset.

Everything is drawn from ``numpy.random.Generator(PCG64)`` streams derived per image from
``(seed, split, index)``: a fixed seed gives byte-identical files, and the images of one split do
not depend on how many images the other split has.
"""
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

CLASSES = ('circle', 'square', 'triangle', 'ring')
SPLITS = ('train', 'val')

CIRCLE, SQUARE, TRIANGLE, RING = range(len(CLASSES))
#: Smallest ``Shape.size`` per class, chosen so that even the smallest object covers >= 16 px.
MIN_SIZE = {CIRCLE: 3.0, SQUARE: 3.0, TRIANGLE: 4.5, RING: 4.5}
#: ``Shape.angle`` of unrotated shapes: vertices on the diagonals of a square (axis-aligned
#: sides), a triangle's apex straight up (y grows downwards).
UPRIGHT_ANGLE = {SQUARE: math.pi / 4, TRIANGLE: -math.pi / 2}
#: An annotated object keeps at least this many visible pixels.
MIN_VISIBLE_AREA = 12
TEXTURES = ('gradient', 'stripes', 'noise', 'plain')


@dataclass(frozen=True)
class ShapesPreset:
    """How hard the generated scenes are.

    Attributes:
        image_side_range: each image side is uniform in this closed range (pixels).
        square: one side drawn for both (else height and width independently, so the aspect
            ratio varies).
        max_objects: each image draws 1 .. ``max_objects`` candidate objects.
        size_fraction_range: ``Shape.size`` is log-uniform between these fractions of the
            image's shorter side (the lower end never below the class's ``MIN_SIZE``).
        min_visible_fraction: a painted object must keep at least this fraction of its
            in-image area visible; 1.0 forbids any overlap.
        inside: objects lie entirely inside the image (else only their centre does).
        rotate: squares and triangles get a random rotation (else squares are axis-aligned and
            triangles stand on their base).
        textures: background kinds drawn from (``TEXTURES``).
    """
    image_side_range: Tuple[int, int]
    square: bool
    max_objects: int
    size_fraction_range: Tuple[float, float]
    min_visible_fraction: float
    inside: bool
    rotate: bool
    textures: Tuple[str, ...]


PRESETS: Dict[str, ShapesPreset] = {
    'cluttered': ShapesPreset(image_side_range=(160, 320), square=False, max_objects=8,
                              size_fraction_range=(0.0, 0.35), min_visible_fraction=0.3,
                              inside=False, rotate=True,
                              textures=('gradient', 'stripes', 'noise')),
    'simple': ShapesPreset(image_side_range=(112, 144), square=True, max_objects=6,
                           size_fraction_range=(0.1, 0.25), min_visible_fraction=1.0,
                           inside=True, rotate=False, textures=('plain', )),
}
DEFAULT_PRESET = 'cluttered'


def get_preset(name: str) -> ShapesPreset:
    """The preset called ``name``, with a clear error for unknown names."""
    if name not in PRESETS:
        raise ValueError(f'unknown shapes preset {name!r}; choose from {sorted(PRESETS)}')
    return PRESETS[name]


@dataclass(frozen=True)
class Shape:
    """One object to paint; geometry in pixel coordinates (x right, y down, pixel centres at +0.5).

    ``size`` is the outer radius of circles and rings, the half side of squares and the
    circumradius of (equilateral) triangles. ``angle`` (radians) rotates squares and triangles and
    is ignored for circles and rings; ``inner_ratio`` is a ring's inner / outer radius.
    """
    label: int
    center: Tuple[float, float]
    size: float
    angle: float
    color: Tuple[int, int, int]
    inner_ratio: float = 0.0


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The independent random stream of image ``index`` of ``split``."""
    sequence = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index))
    return np.random.Generator(np.random.PCG64(sequence))


def sample_image_size(rng: np.random.Generator, preset: ShapesPreset) -> Tuple[int, int]:
    """``(height, width)``, each side uniform in ``preset.image_side_range``."""
    low, high = preset.image_side_range
    if preset.square:
        side = int(rng.integers(low, high + 1))
        return side, side
    height, width = rng.integers(low, high + 1, size=2)
    return int(height), int(width)


def _pixel_grid(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, broadcastable: ``x`` (1, W) and ``y`` (H, 1)."""
    return np.arange(width)[None, :] + 0.5, np.arange(height)[:, None] + 0.5


def _gradient_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Linear ramp along a random direction, (H, W) in [0, 1]."""
    theta = rng.uniform(0, 2 * math.pi)
    x, y = _pixel_grid(height, width)
    projection = x * math.cos(theta) + y * math.sin(theta)
    return (projection - projection.min()) / max(float(np.ptp(projection)), 1e-6)


def _stripe_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Soft sinusoidal stripes of random period, direction and phase, (H, W) in [0, 1]."""
    period, theta, phase = rng.uniform(8, 48), rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
    x, y = _pixel_grid(height, width)
    projection = x * math.cos(theta) + y * math.sin(theta)
    return 0.5 + 0.5 * np.sin(2 * math.pi * projection / period + phase)


def _noise_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Value noise: a coarse random lattice upsampled with smoothstep-bilinear weights, (H, W)."""
    cells = int(rng.integers(2, 9))
    lattice = rng.random((cells + 1, cells + 1))

    def weights(length: int) -> Tuple[np.ndarray, np.ndarray]:
        position = np.linspace(0, cells, length, endpoint=False)
        cell = position.astype(np.int64)
        frac = position - cell
        return cell, frac * frac * (3 - 2 * frac)  # smoothstep hides the lattice seams

    row, fy = weights(height)
    col, fx = weights(width)
    rows = lattice[row] * (1 - fy)[:, None] + lattice[row + 1] * fy[:, None]  # (H, cells + 1)
    return rows[:, col] * (1 - fx) + rows[:, col + 1] * fx


def _plain_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Constant zero field: the background is the first of its two colours, (H, W)."""
    return np.zeros((height, width))


_FIELDS: Dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = dict(
    zip(TEXTURES, (_gradient_field, _stripe_field, _noise_field, _plain_field)))


def render_background(rng: np.random.Generator, height: int, width: int,
                      textures: Tuple[str, ...]) -> np.ndarray:
    """A random texture of ``textures`` blended between two random colours: (H, W, 3) uint8.
    No per-pixel grain: it would make the PNGs ~7x larger and twice as slow to write."""
    field = _FIELDS[textures[int(rng.integers(len(textures)))]](rng, height, width)
    start, end = rng.integers(0, 256, size=(2, 3)).astype(np.float64)
    return np.rint(start + field[..., None] * (end - start)).astype(np.uint8)


def _contrasting_color(rng: np.random.Generator, reference: np.ndarray,
                       min_distance: float = 100.0, tries: int = 16) -> Tuple[int, int, int]:
    """A random RGB colour, re-drawn (a bounded number of times) while too close to
    ``reference`` so that objects stand out from the background under them."""
    for _ in range(tries):
        color = rng.integers(0, 256, size=3)
        if np.linalg.norm(color - reference.astype(np.float64)) >= min_distance:
            break
    return int(color[0]), int(color[1]), int(color[2])


def circumradius(label: int, size: float) -> float:
    """Radius of the smallest centred circle holding a shape of ``label`` and ``size``."""
    return size * (math.sqrt(2) if label == SQUARE else 1.0)


def sample_shape(rng: np.random.Generator, background: np.ndarray,
                 preset: ShapesPreset) -> Shape:
    """One random object with its centre (or, with ``preset.inside``, all of it) inside
    ``background`` (H, W, 3); log-uniform size."""
    height, width = background.shape[:2]
    label = int(rng.integers(len(CLASSES)))
    low_fraction, high_fraction = preset.size_fraction_range
    low = max(MIN_SIZE[label], low_fraction * min(height, width))
    high = max(low * 1.5, high_fraction * min(height, width))
    size = float(np.exp(rng.uniform(math.log(low), math.log(high))))
    margin = min(circumradius(label, size), min(height, width) / 2) if preset.inside else 0.0
    cx = float(rng.uniform(margin, width - margin))
    cy = float(rng.uniform(margin, height - margin))
    angle = float(rng.uniform(0, 2 * math.pi)) if preset.rotate else UPRIGHT_ANGLE.get(label, 0.)
    inner_ratio = float(rng.uniform(0.4, 0.7)) if label == RING else 0.0
    color = _contrasting_color(rng, background[int(cy), int(cx)])
    return Shape(label, (cx, cy), size, angle, color, inner_ratio)


def sample_scene(rng: np.random.Generator, background: np.ndarray,
                 preset: ShapesPreset) -> List[Shape]:
    """1 .. ``preset.max_objects`` candidate objects, in painting order."""
    return [sample_shape(rng, background, preset)
            for _ in range(int(rng.integers(1, preset.max_objects + 1)))]


def _convex_polygon_mask(vertices: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pixels on the inner side of every edge of a convex polygon whose (N, 2) ``vertices`` are
    ordered by increasing angle; ``x`` (1, W) and ``y`` (H, 1) are relative to its centre."""
    inside = np.ones(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        inside &= (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0
    return inside


def rasterize_shape(shape: Shape, height: int, width: int) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centre lies inside ``shape`` (no anti-aliasing,
    so painted pixels carry exactly the object's colour). Only the shape's bounding window is
    evaluated."""
    cx, cy = shape.center
    radius = circumradius(shape.label, shape.size)
    top, bottom = max(0, math.floor(cy - radius)), min(height, math.ceil(cy + radius) + 1)
    left, right = max(0, math.floor(cx - radius)), min(width, math.ceil(cx + radius) + 1)
    mask = np.zeros((height, width), dtype=bool)
    if top >= bottom or left >= right:
        return mask
    x = np.arange(left, right)[None, :] + 0.5 - cx
    y = np.arange(top, bottom)[:, None] + 0.5 - cy
    if shape.label in (CIRCLE, RING):
        squared = x * x + y * y
        window = squared <= shape.size**2
        if shape.label == RING:
            window &= squared >= (shape.size * shape.inner_ratio)**2
    else:
        corners = 4 if shape.label == SQUARE else 3
        angles = shape.angle + 2 * math.pi * np.arange(corners) / corners
        vertices = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        window = _convex_polygon_mask(vertices, x, y)
    mask[top:bottom, left:right] = window
    return mask


def composite(background: np.ndarray, shapes: List[Shape], min_visible_fraction: float,
              min_area: int = MIN_VISIBLE_AREA
              ) -> Tuple[np.ndarray, List[Shape], List[np.ndarray]]:
    """Paint ``shapes`` in order over ``background`` (H, W, 3) uint8, later ones on top.

    A shape is skipped when fewer than ``min_area`` of its pixels fall inside the image, or when
    painting it would leave an already painted shape with fewer than
    ``max(min_area, min_visible_fraction * its in-image area)`` visible pixels. Returns the image,
    the painted shapes and their visible (pairwise disjoint) boolean (H, W) masks.
    """
    height, width = background.shape[:2]
    painted: List[Shape] = []
    visible: List[np.ndarray] = []
    required: List[float] = []
    for shape in shapes:
        mask = rasterize_shape(shape, height, width)
        area = int(mask.sum())
        if area < min_area:
            continue
        remaining = [earlier & ~mask for earlier in visible]
        if any(rest.sum() < need for rest, need in zip(remaining, required)):
            continue
        painted.append(shape)
        visible = remaining + [mask]
        required.append(max(min_area, min_visible_fraction * area))
    image = background.copy()
    for shape, mask in zip(painted, visible):
        image[mask] = shape.color
    return image, painted, visible


def generate_image(rng: np.random.Generator, preset: ShapesPreset = PRESETS[DEFAULT_PRESET]
                   ) -> Tuple[np.ndarray, List[Shape], List[np.ndarray]]:
    """One image (H, W, 3) uint8 with at least one object, its objects and visible masks."""
    height, width = sample_image_size(rng, preset)
    background = render_background(rng, height, width, preset.textures)
    while True:
        image, shapes, masks = composite(background, sample_scene(rng, background, preset),
                                         preset.min_visible_fraction)
        if shapes:
            return image, shapes, masks


def build_annotation(mask: np.ndarray, label: int, ann_id: int, image_id: int) -> dict:
    """COCO instance annotation of a non-empty boolean (H, W) visible mask: compressed RLE
    segmentation (counts as str), pixel-count area and the mask's tight xywh bbox."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return {
        'id': ann_id,
        'image_id': image_id,
        'category_id': label + 1,
        'segmentation': {'size': [int(s) for s in rle['size']],
                         'counts': rle['counts'].decode('ascii')},
        'area': int(mask.sum()),
        'bbox': [float(cols[0]), float(rows[0]),
                 float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)],
        'iscrowd': 0,
    }


def categories() -> List[dict]:
    """COCO ``categories``: ids 1 .. 4 in ``CLASSES`` order."""
    return [{'id': i + 1, 'name': name, 'supercategory': 'shape'} for i, name in enumerate(CLASSES)]


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` as a new file renamed onto ``path``: whatever had that name (a file, a
    symbolic link) is replaced, never written through."""
    tmp = path.with_name(f'.{path.name}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_png(image: np.ndarray, path: Path) -> None:
    # Fixed encoder settings; Pillow writes no time chunk, so the bytes depend on pixels only.
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG', compress_level=6, optimize=False)
    _replace_file(path, buffer.getvalue())


def _write_json(data: dict, path: Path) -> None:
    text = json.dumps(data, sort_keys=True, separators=(',', ':')) + '\n'
    _replace_file(path, text.encode('utf-8'))


def generate_split(out_dir: Path, split: str, num_images: int, seed: int,
                   preset: str = DEFAULT_PRESET) -> dict:
    """Write ``out_dir/<split>/NNNNNN.png`` and ``out_dir/annotations/<split>.json`` with the
    scenes of the named ``preset``, replacing only files of these names; returns the COCO dict
    that was written. Other files are never touched (images left from a larger earlier run are
    not in the new annotations)."""
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')
    if num_images < 0:
        raise ValueError(f'number of {split} images must be >= 0, got {num_images}')
    scenes = get_preset(preset)
    image_dir = Path(out_dir) / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image, shapes, masks = generate_image(image_rng(seed, split, index), scenes)
        image_id, file_name = index + 1, f'{index:06d}.png'
        _write_png(image, image_dir / file_name)
        images.append({'id': image_id, 'file_name': file_name,
                       'height': image.shape[0], 'width': image.shape[1]})
        for shape, mask in zip(shapes, masks):
            annotations.append(build_annotation(mask, shape.label, len(annotations) + 1, image_id))
    coco = {
        'info': {'description': 'mmvidt synthetic shapes', 'version': '1.0',
                 'split': split, 'seed': seed, 'preset': preset},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': categories(),
    }
    ann_dir = Path(out_dir) / 'annotations'
    ann_dir.mkdir(parents=True, exist_ok=True)
    _write_json(coco, ann_dir / f'{split}.json')
    return coco


def generate_dataset(out_dir: Path, num_train: int, num_val: int, seed: int,
                     preset: str = DEFAULT_PRESET, overwrite: bool = False
                     ) -> Dict[str, dict]:
    """Generate both splits of the named ``preset`` under ``out_dir``; returns
    ``{split: coco_dict}``.

    Args:
        preset: a name of ``PRESETS``.
        overwrite: write into a non-empty ``out_dir``, replacing the files the generator writes
            (and nothing else). Without it a non-empty ``out_dir`` is refused.

    Raises:
        ValueError: ``preset`` is unknown (before anything is written).
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is off.
        NotADirectoryError: ``out_dir`` exists and is not a directory.
    """
    if seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed}')
    get_preset(preset)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f'{out_dir} exists and is not a directory')
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f'{out_dir} is not empty; pass --force to write the dataset into it '
                              '(only the files the generator writes are replaced)')
    return {split: generate_split(out_dir, split, count, seed, preset)
            for split, count in zip(SPLITS, (num_train, num_val))}
