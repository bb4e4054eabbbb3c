"""UQR mask vectors: low-frequency 2-D DCT coefficients of box-aligned instance masks.

ViDT+ (UQR, ViDT+ paper) represents the mask of each query by the first ``num_coeffs``
zigzag-ordered
coefficients of the orthonormal 2-D DCT-II of its ``mask_size`` x ``mask_size`` box-aligned mask.
The transform matrix comes from ``scipy.fft.dct`` (a library DCT); applying it as two matrix
products keeps the whole encoding / decoding on the device of the masks.
"""
from typing import Tuple

import numpy as np
import scipy.fft
import torch
from mmcv.ops import roi_align
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from torch import Tensor, nn


def zigzag_indices(size: int, num: int) -> Tensor:
    """Row-major flat indices of the first ``num`` cells of a ``size`` x ``size`` JPEG zigzag scan.

    The scan walks the anti-diagonals ``row + col = s``: upwards (row decreasing) for even ``s``,
    downwards for odd ``s`` -- (0,0), (0,1), (1,0), (2,0), (1,1), (0,2), ...
    """
    if not 0 < num <= size * size:
        raise ValueError(f'cannot keep {num} coefficients of a {size}x{size} grid')
    cells = [(r, c) for r in range(size) for c in range(size)]
    cells.sort(key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else -rc[0]))
    return torch.tensor([r * size + c for r, c in cells[:num]], dtype=torch.long)


def dct_matrix(size: int) -> Tensor:
    """(size, size) float64 orthonormal DCT-II matrix ``D``:
    ``D @ x == scipy.fft.dct(x, norm='ortho')``."""
    return torch.from_numpy(scipy.fft.dct(np.eye(size), type=2, norm='ortho', axis=0))


class DCTMaskCoder(nn.Module):
    """Encode box-aligned binary masks into DCT vectors and decode them back.

    Args:
        num_coeffs: vector length (official ``n_keep`` = 256).
        mask_size: side of the box-aligned mask grid (official ``gt_mask_len`` = 128).
    """

    def __init__(self, num_coeffs: int = 256, mask_size: int = 128) -> None:
        super().__init__()
        self.num_coeffs = num_coeffs
        self.mask_size = mask_size
        self.register_buffer('zigzag', zigzag_indices(mask_size, num_coeffs), persistent=False)
        self.register_buffer('dct', dct_matrix(mask_size), persistent=False)

    def encode(self, masks: Tensor) -> Tensor:
        """(n, M, M) binary masks -> (n, num_coeffs) float32 vectors (as the official OpenCV
        DCT of float32 masks)."""
        dct = self.dct.to(masks.device, torch.float32)
        coeffs = dct @ masks.float() @ dct.T
        return coeffs.flatten(1)[:, self.zigzag]

    def encode_instances(self, masks: Tensor, boxes: Tensor) -> Tensor:
        """Vector targets of instance masks, each cropped to its box (official training target).

        Args:
            masks: (n, h, w) bitmasks at the (unpadded) network-input size.
            boxes: (n, 4) absolute xyxy boxes in the same pixels.

        Returns:
            (n, num_coeffs) float32: DCT of ``roi_align(mask, box, M x M, aligned)`` >= 0.5.
        """
        if len(masks) != len(boxes):
            raise ValueError(f'{len(masks)} masks but {len(boxes)} boxes')
        if len(masks) == 0:
            return boxes.new_zeros((0, self.num_coeffs))
        index = torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)
        rois = torch.cat([index[:, None], boxes], 1)
        crops = roi_align(masks[:, None].float(), rois, (self.mask_size, self.mask_size), 1.0, 0,
                          'avg', True)[:, 0]
        return self.encode((crops >= 0.5).float())

    def decode(self, vectors: Tensor) -> Tensor:
        """(n, num_coeffs) vectors -> (n, M, M) float 0/1 masks.

        Inverse DCT in float64 (as the official NumPy / OpenCV path) of the zero-filled
        coefficient grid, binarised at the middle of each reconstruction's value range.
        """
        num = vectors.shape[0]
        grid = vectors.new_zeros((num, self.mask_size**2), dtype=torch.float64)
        grid[:, self.zigzag] = vectors.double()
        grid = grid.view(num, self.mask_size, self.mask_size)
        dct = self.dct.to(vectors.device)
        recon = dct.T @ grid @ dct
        low = recon.flatten(1).min(1).values[:, None, None]
        high = recon.flatten(1).max(1).values[:, None, None]
        return (recon > (high + low) / 2).float()


def paste_masks(masks: Tensor, boxes: Tensor, image_shape: Tuple[int, int],
                threshold: float = 0.5) -> Tensor:
    """Paste box-aligned masks into an image (detectron2 ``paste_masks_in_image`` semantics).

    Every image pixel centre is mapped into its box, the (M, M) mask is sampled bilinearly
    (``grid_sample``, ``align_corners=False``, zeros outside) and thresholded.

    Args:
        masks: (n, M, M) float masks.
        boxes: (n, 4) absolute xyxy boxes in image pixels (need not lie inside the image).
        image_shape: (H, W).

    Returns:
        (n, H, W) bool.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    pasted = masks.new_zeros((len(masks), height, width), dtype=torch.bool)
    # One box at a time on CPU, restricted to the box's neighbourhood (what detectron2 does):
    # pixels further away are below the threshold anyway. On GPU, bounded chunks.
    if masks.device.type == 'cpu':
        chunk = 1
    else:
        chunk = max(1, (1 << 28) // max(1, height * width))
    for start in range(0, len(masks), chunk):
        sl = slice(start, start + chunk)
        sampled, region = _do_paste_mask(masks[sl, None], boxes[sl], height, width,
                                         skip_empty=masks.device.type == 'cpu')
        pasted[(sl, ) + region] = sampled >= threshold
    return pasted

