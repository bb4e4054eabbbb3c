"""mmdet's ``DetDataPreprocessor`` that refuses the images which would give silent wrong results.

The check lives in the data preprocessor, the one component through which every batch of every
mmvidt detector config enters the model (training, validation, testing, ``DetInferencer``), so
the detectors' forward passes stay free of host synchronisations and data-dependent branches
(``torch.compile`` / ``torch.export`` trace them unchanged).
"""
import math
from typing import List, Optional, Sequence

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from torch import Tensor

from mmvidt.utils.image_checks import check_image_shape, image_name


@MODELS.register_module()
class ViDTDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` with clear errors for unusable images.

    Every image must be (C, H, W) with H, W >= 1 and as many channels as ``mean`` / ``std``
    (3 with ``bgr_to_rgb``); with ``check_finite`` (default) a batch holding NaN or Inf after
    normalisation is refused instead of giving NaN boxes and scores. That check is one
    min / max reduction over the batch (and, on a GPU, one synchronisation) per step.

    Args:
        check_finite: refuse non-finite pixel values; ``False`` skips the check (e.g. for
            benchmarks on inputs known to be finite).
        **kwargs: the arguments of ``DetDataPreprocessor`` (``mean``, ``std``, ``bgr_to_rgb``,
            ``pad_size_divisor``, ...); ``std`` must be positive.
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 *args,
                 check_finite: bool = True,
                 **kwargs) -> None:
        if std is not None and not all(math.isfinite(s) and s > 0 for s in std):
            raise ValueError(f'ViDTDataPreprocessor: std must be positive and finite, got '
                             f'{list(std)}')
        super().__init__(mean, std, *args, **kwargs)
        self.check_finite = check_finite

    def _expected_channels(self) -> Optional[int]:
        if self._enable_normalize:
            return int(self.mean.shape[0])
        return 3 if self._channel_conversion else None

    @staticmethod
    def _all_finite(inputs: Tensor) -> bool:
        """One pass over the (N, C, H, W) batch: min and max are finite iff every value is
        (both propagate NaN); several times cheaper than ``isfinite(inputs).all()``."""
        low, high = torch.aminmax(inputs)
        return bool(torch.isfinite(low) & torch.isfinite(high))

    def _image_names(self, data: dict, count: int) -> List[str]:
        samples = data.get('data_samples') or [None] * count
        return [image_name(s.metainfo if s is not None else {}, i) for i, s in enumerate(samples)]

    def forward(self, data: dict, training: bool = False) -> dict:
        """Check the (C, H, W) images, preprocess as mmdet does, check the finite values.

        Raises:
            ValueError: naming the offending images.
        """
        inputs = data['inputs']  # a list of (C, H, W), or (N, C, H, W) from default_collate
        if isinstance(inputs, Tensor) and inputs.dim() != 4:
            raise ValueError(f'ViDTDataPreprocessor: batched inputs must be (N, C, H, W), got '
                             f'{tuple(inputs.shape)}')
        images = list(inputs)
        names = self._image_names(data, len(images))
        for image, name in zip(images, names):
            check_image_shape(image.shape, 'CHW', name, self._expected_channels())
        data = super().forward(data, training)
        if self.check_finite and not self._all_finite(data['inputs']):
            finite = torch.isfinite(data['inputs']).flatten(1).all(1).tolist()
            bad = ', '.join(name for name, ok in zip(names, finite) if not ok)
            raise ValueError(
                f'{bad}: NaN or Inf pixel values (after normalisation); the detections would be '
                'NaN. Fix the input, or set data_preprocessor.check_finite=False to skip this '
                'check')
        return data
