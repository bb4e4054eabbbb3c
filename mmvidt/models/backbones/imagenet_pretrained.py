"""Loading official ImageNet classification checkpoints into the ViDT bodies (non-strict)."""
from typing import Callable, Dict, List, Tuple

import torch
from mmengine.logging import print_log

from mmvidt.utils import read_checkpoint, state_dict_of, summarize_keys


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
        state = state_dict_of(read_checkpoint(checkpoint), source=checkpoint)
        self.load_imagenet_weights(state, source=checkpoint)

    def load_imagenet_weights(self, state: Dict[str, torch.Tensor], source: str = 'checkpoint'
                              ) -> Tuple[List[str], List[str]]:
        """Load the weights of an ImageNet classification checkpoint (non-strict), log a report.

        Args:
            state: the checkpoint's state dict with official key names (what
                :func:`~mmvidt.utils.state_dict_of` finds in the file).
            source: name of the checkpoint in messages.

        Returns:
            ``(missing, unused)``: own keys left at their initialisation (the ViDT additions)
            and checkpoint keys not used (classifier head, final norm, buffers).

        Raises:
            ValueError: the checkpoint holds no weights of this family, or a shape does not fit.
        """
        name = type(self).__name__
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
