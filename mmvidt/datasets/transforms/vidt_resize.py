"""The ViDT resize rule (short side ``s``, max size ``m``, both sides floored to multiples of 16).

The official ViDT data pipeline resizes differently from mmdet's keep-ratio ``Resize``: the long
side is truncated instead of rounded and *both* output sides are then floored to a multiple of 16
independently (the aspect ratio changes slightly). A 640x480 (WxH) image at ``s=800`` becomes
1056x800 here, 1067x800 with mmdet's ``Resize(scale=(1333, 800), keep_ratio=True)``.

:class:`ViDTResize` only computes the target size; resizing the image, boxes, masks and
segmentation maps is delegated to mmdet's :class:`~mmdet.datasets.transforms.Resize`, so every
field is handled exactly as in the rest of mmdet (``img_shape``, per-axis ``scale_factor``,
homography matrix, box clipping, nearest-neighbour masks).
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type
from mmdet.structures.mask import BitmapMasks

from mmvidt.utils.image_checks import check_image_shape, image_name

#: Both output sides are floored to a multiple of this (the backbone's patch size times 4).
SIZE_DIVISOR = 16


def vidt_resize_shape(width: int,
                      height: int,
                      short_side: int,
                      max_size: Optional[int] = None) -> Tuple[int, int]:
    """Output size ``(new_width, new_height)`` of the official ViDT resize rule.

    1. If scaling the short side to ``short_side`` would make the long side exceed ``max_size``,
       the target short side becomes ``round(max_size * short / long)``.
    2. If the image's short side already equals the target, the image keeps its size up to
       flooring both sides to a multiple of 16.
    3. Otherwise the short side becomes the target, the long side ``int(target * long / short)``
       (truncated), and both sides are floored to a multiple of 16.

    The float expressions keep the official evaluation order so that ties round identically.

    Args:
        width: Input width in pixels.
        height: Input height in pixels.
        short_side: Target length of the shorter side.
        max_size: Upper bound for the longer side before flooring; ``None`` for no bound.

    Returns:
        ``(new_width, new_height)``, both positive multiples of 16.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f'ViDTResize: image size must be positive, got {width}x{height} (WxH)')
    short, long = float(min(width, height)), float(max(width, height))
    if max_size is not None and long / short * short_side > max_size:
        short_side = int(round(max_size * short / long))
    if min(width, height) == short_side:
        new_w, new_h = width, height
    elif width < height:
        new_w, new_h = short_side, int(short_side * height / width)
    else:
        new_w, new_h = int(short_side * width / height), short_side
    new_w, new_h = new_w - new_w % SIZE_DIVISOR, new_h - new_h % SIZE_DIVISOR
    if new_w == 0 or new_h == 0:
        raise ValueError(
            f'ViDTResize: resizing a {width}x{height} (WxH) image with short_side={short_side}, '
            f'max_size={max_size} leaves a side shorter than {SIZE_DIVISOR} pixels')
    return new_w, new_h


@TRANSFORMS.register_module()
class ViDTResize(Resize):
    """Resize with the official ViDT rule (see :func:`vidt_resize_shape`).

    Required keys: ``img``; optional ``gt_bboxes``, ``gt_masks``, ``gt_seg_map``.
    Modified keys: ``img``, ``img_shape``, ``gt_bboxes``, ``gt_masks``, ``gt_seg_map``.
    Added keys: ``scale``, ``scale_factor`` (``(w_ratio, h_ratio)``, the actual per-axis ratios),
    ``keep_ratio`` (False: the rule itself fixes the aspect ratio), ``homography_matrix``.

    Args:
        short_side: Target short side, or a sequence of them from which one is drawn uniformly
            per image (the official multi-scale training).
        max_size: Bound on the long side (before flooring to a multiple of 16); ``None`` for no
            bound (the official crop branch resizes to {400, 500, 600} without one).
        backend: Image interpolation backend. ``'pillow'`` (default) is the official
            interpolation (torchvision resizing PIL images: bilinear, antialiased when
            shrinking). ``'cv2'`` is faster but does not antialias when shrinking, so pixel
            values differ from the official pipeline. ``'pillow'`` needs uint8 images. Boxes and
            masks do not depend on it: bitmap masks are resized with torch's legacy nearest
            interpolation like the official code (cv2's nearest picks a different source row
            or column for some size pairs), polygon masks geometrically by mmdet.
        interpolation: Interpolation method of the image backend.
        clip_object_border: Clip boxes to the resized image. Keep True: the official code clips
            boxes to the image when loading them, mmdet's ``CocoDataset`` does not.
    """

    def __init__(self,
                 short_side: Union[int, Sequence[int]],
                 max_size: Optional[int] = None,
                 backend: str = 'pillow',
                 interpolation: str = 'bilinear',
                 clip_object_border: bool = True) -> None:
        short_sides = [short_side] if isinstance(short_side, int) else list(short_side)
        if not short_sides or not all(isinstance(s, int) and s > 0 for s in short_sides):
            raise ValueError(
                f'ViDTResize: short_side must be a positive int or a non-empty sequence of them, '
                f'got {short_side!r}')
        if max_size is not None and max_size <= 0:
            raise ValueError(f'ViDTResize: max_size must be positive or None, got {max_size!r}')
        # ``scale`` is a placeholder: the target size is computed per image in ``transform``.
        super().__init__(scale=(max_size or max(short_sides), max(short_sides)),
                         keep_ratio=False,
                         clip_object_border=clip_object_border,
                         backend=backend,
                         interpolation=interpolation)
        self.short_sides = short_sides
        self.max_size = max_size

    def _resize_masks(self, results: dict) -> None:
        """Resize bitmap masks ``(N, H, W)`` to ``img_shape`` exactly as the official code."""
        masks = results.get('gt_masks', None)
        if not isinstance(masks, BitmapMasks):
            super()._resize_masks(results)
            return
        height, width = results['img_shape']
        if len(masks) == 0:  # torch refuses to interpolate empty tensors
            resized = np.zeros((0, height, width), dtype=np.uint8)
        else:
            resized = F.interpolate(
                torch.from_numpy(masks.masks.astype(np.uint8, copy=False))[None],
                (height, width),
                mode='nearest')[0].numpy()
        results['gt_masks'] = BitmapMasks(resized, height, width)

    @cache_randomness
    def _choose_short_side(self) -> int:
        """Draw the target short side for one image."""
        return self.short_sides[np.random.randint(len(self.short_sides))]

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        """Resize ``results`` in place to the ViDT size of its current image and return it.

        Raises:
            ValueError: the image is not (H, W, C) with both sides >= 1 (naming the image).
        """
        check_image_shape(results['img'].shape, 'HWC', f'ViDTResize: {image_name(results)}')
        height, width = results['img'].shape[:2]
        results['scale'] = vidt_resize_shape(width, height, self._choose_short_side(),
                                             self.max_size)
        self._resize_img(results)
        self._resize_bboxes(results)
        self._resize_masks(results)
        self._resize_seg(results)
        self._record_homography_matrix(results)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(short_side={self.short_sides}, '
                f'max_size={self.max_size}, backend={self.backend}, '
                f'interpolation={self.interpolation}, '
                f'clip_object_border={self.clip_object_border})')
