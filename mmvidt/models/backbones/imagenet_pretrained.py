"""Loading official ImageNet classification checkpoints into the ViDT bodies (non-strict)."""
from typing import Callable, List, Tuple

import torch
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from mmvidt.converters.checks import summarize_keys
from mmvidt.utils import safe_load


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint as plain data only (``weights_only=True``), from a URL or any path."""
    if path.startswith(('http://', 'https://')):
        return torch.hub.load_state_dict_from_url(path, map_location='cpu', weights_only=True)
    with get_local_path(path) as local_path:
        return safe_load(local_path, map_location='cpu')


class ImageNetPretrainedMixin:
    """``init_cfg=dict(type='Pretrained', checkpoint=PATH_OR_URL)`` for a body whose pretrained
    weights come from an official classification checkpoint (keys renamed, non-strict, with a
    report of what was and was not loaded).

    Without a Pretrained ``init_cfg`` the module keeps mmengine's ``init_weights`` (the layers
    keep their construction-time initialisation, as the official models do). Mix in before
    ``BaseModule`` and set the class attributes below.
    """

    #: official checkpoint key -> own state-dict key (wrap in ``staticmethod``).
    pretrained_key_to_mmvidt: Callable[[str], str]
    #: family name in messages, e.g. ``'Swin'``.
    pretrained_family: str
    #: what the official keys look like, quoted when a checkpoint has none of them.
    pretrained_keys_hint: str
    #: likely cause of a shape mismatch, quoted in that error.
    pretrained_shape_hint: str = 'wrong arch?'

    def init_weights(self) -> None:
        """Construction-time init, or the ImageNet weights of a Pretrained ``init_cfg``."""
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        checkpoint = self.init_cfg.get('checkpoint')
        if not checkpoint:
            raise ValueError(f"{type(self).__name__} init_cfg of type 'Pretrained' needs a "
                             "'checkpoint' path")
        self.load_imagenet_weights(read_checkpoint(checkpoint), source=checkpoint)

    def load_imagenet_weights(self, checkpoint: dict, source: str = 'checkpoint'
                              ) -> Tuple[List[str], List[str]]:
        """Load an ImageNet classification checkpoint (non-strict) and log a report.

        Args:
            checkpoint: ``{'model': state_dict}`` (official release format), ``{'state_dict':
                ...}`` or a bare state dict, with official key names.
            source: name of the checkpoint in messages.

        Returns:
            ``(missing, unused)``: own keys left at their initialisation (the ViDT additions)
            and checkpoint keys not used (classifier head, final norm, buffers).

        Raises:
            ValueError: the checkpoint holds no weights of this family, or a shape does not fit.
        """
        name = type(self).__name__
        state = checkpoint.get('model', checkpoint.get('state_dict', checkpoint))
        own = self.state_dict()
        loadable, unused = {}, []
        for key, value in state.items():
            new_key = self.pretrained_key_to_mmvidt(key)
            if new_key in own:
                loadable[new_key] = value
            else:
                unused.append(key)
        if not loadable:
            raise ValueError(f'{source}: no {self.pretrained_family} weights found (expected '
                             f"{self.pretrained_keys_hint}, possibly under 'model')")
        mismatched = [f'{key}: checkpoint {tuple(value.shape)} vs {name} '
                      f'{tuple(own[key].shape)}' for key, value in loadable.items()
                      if value.shape != own[key].shape]
        if mismatched:
            raise ValueError(f'{source}: shapes do not fit this {name} '
                             f'({self.pretrained_shape_hint}):\n  ' + '\n  '.join(mismatched))
        missing = sorted(self.load_state_dict(loadable, strict=False).missing_keys)
        print_log(
            f'{name}: loaded {len(loadable)} tensors from {source}\n'
            f'  unused checkpoint keys ({len(unused)}): {", ".join(summarize_keys(unused))}\n'
            f'  newly initialised {name} keys ({len(missing)}): '
            f'{", ".join(summarize_keys(missing))}', logger='current')
        self._is_init = True
        return missing, unused
