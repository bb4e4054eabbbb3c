"""Zero-padding of an image to whole patches, with symbolic sizes kept symbolic."""
import torch.nn.functional as F
from torch import Tensor, nn


class CornerPadding(nn.Module):
    """Pad (B, C, H, W) at the bottom / right to multiples of ``patch_size``.

    What mmcv's ``AdaptivePadding(padding='corner')`` computes for a patch embedding whose kernel
    equals its stride, but without its ``if pad > 0`` branch: the padded size is written as
    ``ceil(H / p) * p`` and padded to unconditionally (a zero amount copies), so that under
    ``torch.export`` a dynamic H / W is not specialised to take or skip the branch.

    Args:
        patch_size: p (the patch embedding's kernel and stride).
    """

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        # ceil without negative floor division (ONNX's integer Div truncates towards zero)
        size = self.patch_size
        padded_h, padded_w = (height + size - 1) // size * size, (width + size - 1) // size * size
        return F.pad(images, (0, padded_w - width, 0, padded_h - height))
