"""What an mmvidt backbone gives a detector: its output levels, and the check of a neck's inputs.

Every mmvidt backbone lists its levels (``level_channels`` / ``level_strides``: every map it can
return) and selects some with ``out_indices``; ``out_channels`` / ``strides`` describe the tuple
``forward(images)`` returns, in order. :meth:`OutputLevels.check_neck` compares a neck's
``in_channels`` with them and names the backbone's real channels when they differ (see
``neck_input_check.py`` for when it runs).
"""
from typing import Optional, Sequence, Tuple

from torch import nn


def _joined(values: Sequence[int]) -> str:
    return '/'.join(map(str, values))


class OutputLevels:
    """Mixin of mmvidt backbones: ``out_channels`` / ``strides`` of the maps ``forward`` returns.

    Subclasses set ``level_channels``, ``level_strides`` (one entry per level) and
    ``out_indices`` (the levels ``forward`` returns, in its order).
    """
    level_channels: Tuple[int, ...]
    level_strides: Tuple[int, ...]
    out_indices: Tuple[int, ...]

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of the maps ``forward(images)`` returns (``out_indices`` order)."""
        return tuple(self.level_channels[i] for i in self.out_indices)

    @property
    def strides(self) -> Tuple[int, ...]:
        """Nominal strides of the maps ``forward(images)`` returns (``out_indices`` order)."""
        return tuple(self.level_strides[i] for i in self.out_indices)

    def describe_outputs(self) -> str:
        """e.g. ``"PiT with out_indices (0, 1, 2): channels [144, 288, 576] at strides
        8/16/32"``."""
        return (f'{type(self).__name__} with out_indices {tuple(self.out_indices)}: channels '
                f'{list(self.out_channels)} at strides {_joined(self.strides)}')

    def feature_map_error(self) -> Optional[str]:
        """Why this backbone, as configured, cannot feed a neck (None: it can)."""
        return None

    def check_neck(self, neck: nn.Module, owner: str) -> None:
        """Raise ``ValueError`` if ``neck`` cannot take this backbone's outputs.

        Args:
            neck: the neck module (the first one of an ``nn.Sequential`` of necks).
            owner: the detector's class name, for the message.
        """
        error = self.feature_map_error()
        if error is not None:
            raise ValueError(f'{owner}: {error}')
        in_channels = getattr(neck, 'in_channels', None)
        if isinstance(in_channels, int):
            in_channels = [in_channels]
        if not isinstance(in_channels, (list, tuple)) or \
                not all(isinstance(c, int) for c in in_channels):
            return  # a neck that does not declare per-level input channels
        if tuple(in_channels) != self.out_channels:
            raise ValueError(
                f'{owner}: neck {type(neck).__name__} in_channels {list(in_channels)} do not '
                f'match the maps of its backbone, {self.describe_outputs()}; set '
                f'neck.in_channels={list(self.out_channels)} (or choose other '
                f'backbone.out_indices: the levels are channels {list(self.level_channels)} at '
                f'strides {_joined(self.level_strides)})')
