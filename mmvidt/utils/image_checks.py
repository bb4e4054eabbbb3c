"""Clear errors for images a detector cannot use, naming the image (shared by ``ViDTResize`` and
``ViDTDataPreprocessor``) instead of a crash deep inside mmcv or the preprocessing."""
from typing import Any, Mapping, Optional, Sequence


def image_name(meta: Mapping[str, Any], index: Optional[int] = None) -> str:
    """How errors name an image: its file, else its id, else its place in the batch."""
    if meta.get('img_path'):
        return str(meta['img_path'])
    if meta.get('img_id') is not None:
        return f'image id {meta["img_id"]}'
    return 'an image given as an array' if index is None else f'image {index} of the batch'


def check_image_shape(shape: Sequence[int], layout: str, name: str,
                      channels: Optional[int] = None) -> None:
    """Refuse an image whose ``shape`` is not ``layout`` (``'HWC'`` for arrays, ``'CHW'`` for
    tensors) with both sides >= 1 and, if given, ``channels`` channels.

    Raises:
        ValueError: naming the image, its shape and what was expected.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        raise ValueError(f'{name}: image of shape {shape} is not {layout}; give grey images a '
                         'channel axis (e.g. load them as colour images)')
    sizes = dict(zip(layout, shape))
    if sizes['H'] < 1 or sizes['W'] < 1:
        raise ValueError(f'{name}: image of shape {shape} ({layout}) has no pixels')
    if channels is not None and sizes['C'] != channels:
        raise ValueError(f'{name}: image of shape {shape} ({layout}) has {sizes["C"]} '
                         f'channel(s), expected {channels}')
