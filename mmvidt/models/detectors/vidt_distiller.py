"""ViDT trained with token-matching distillation from a frozen, larger ViDT (ViDT+ paper,
Song et al. 2022, Sec. 4.3 "token matching")."""
from typing import Optional, Union

import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor, nn

from mmvidt.utils import check_state_dict, read_checkpoint, state_dict_of
from ..losses.token_matching_loss import DistilTokens
from ..necks.vidt_neck import ViDTNeckOutput
from .vidt import ViDT, batch_padding_mask


def distil_tokens(out: ViDTNeckOutput) -> DistilTokens:
    """The tokens token matching compares: projected patch maps, queries, decoder states."""
    return DistilTokens(out.memory, out.hidden_states[0], out.hidden_states)


def load_teacher_weights(teacher: nn.Module, checkpoint: str) -> None:
    """Load an mmvidt checkpoint of the teacher strictly (every key and shape must fit)."""
    ckpt = read_checkpoint(checkpoint)
    if isinstance(ckpt, dict) and 'state_dict' not in ckpt and 'model' in ckpt:
        raise ValueError(f'teacher checkpoint {checkpoint} is in the official ViDT layout; '
                         'convert it first: python tools/model_converters/vidt2mmvidt.py '
                         f'{checkpoint} TEACHER_MMVIDT.pth --config TEACHER_CONFIG')
    state = state_dict_of(ckpt, source=checkpoint)
    check_state_dict(state, teacher.state_dict(), f'teacher checkpoint {checkpoint}')
    teacher.load_state_dict(state, strict=True)


@MODELS.register_module()
class ViDTDistiller(ViDT):
    """A student :class:`ViDT` that also matches the tokens of a frozen teacher ViDT.

    During training the teacher (e.g. ViDT Swin-base) sees the same padded batch without
    gradients and in eval mode; :class:`TokenMatchingLoss` compares the neck inputs, the
    projected [DET] tokens and all decoder states of both (equal neck width, number of [DET]
    tokens and decoder layers are required; the bodies may differ). The loss is added as
    ``loss_distil``. Inference is the student's alone.

    The teacher is kept outside the module tree (as mmdet's knowledge-distillation detectors
    do): it is not in ``parameters()`` (so not in the optimizer), not in ``state_dict()`` (saved
    checkpoints are plain student ViDT checkpoints) and is moved with the student by
    ``to`` / ``cuda`` / ``cpu``.

    Args:
        teacher_config: the teacher's config file (its ``model``) or a model config dict.
        teacher_ckpt: mmvidt checkpoint of the teacher (path or URL; convert an official one
            with ``tools/model_converters/vidt2mmvidt.py``). None
            leaves the teacher at its initialisation (tests only: distilling from it is useless).
        distil_loss: config of the token-matching loss.
        **kwargs: the student :class:`ViDT` arguments.
    """

    def __init__(self,
                 *args,
                 teacher_config: Union[str, dict],
                 teacher_ckpt: Optional[str] = None,
                 distil_loss: dict = dict(type='TokenMatchingLoss', loss_weight=4.0),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(teacher_config, str):
            teacher_config = Config.fromfile(teacher_config)['model']
        teacher_config = dict(teacher_config)
        teacher_config.pop('data_preprocessor', None)  # it receives the student's inputs
        teacher = MODELS.build(teacher_config)
        if not isinstance(teacher, ViDT):
            raise TypeError(f'the teacher must be a ViDT, got {type(teacher).__name__}')
        if teacher_ckpt is None:
            print_log('ViDTDistiller: no teacher_ckpt, the teacher keeps its initialisation',
                      logger='current', level=30)
        else:
            load_teacher_weights(teacher, teacher_ckpt)
        teacher.requires_grad_(False)
        self.teacher = teacher.eval()
        self.distil_loss = MODELS.build(distil_loss)

    def __setattr__(self, name: str, value) -> None:
        # keep the teacher out of the module tree (parameters, state_dict, optimizer)
        if name == 'teacher':
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _apply(self, fn, *args, **kwargs):
        """``to`` / ``cuda`` / ``cpu`` / ``half``: move the teacher along with the student."""
        teacher = self.__dict__.get('teacher')
        if teacher is not None:
            teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> 'ViDTDistiller':
        super().train(mode)
        self.teacher.train(False)  # always eval: no dropout, fixed teacher tokens
        return self

    def teacher_tokens(self, images: Tensor, mask: Tensor) -> DistilTokens:
        """The teacher's distillation tokens for a padded batch (see
        :meth:`ViDT.forward_features`), without gradients."""
        with torch.no_grad():
            return distil_tokens(self.teacher.forward_features(images, mask))

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        """Student detection losses plus ``loss_distil``."""
        mask = batch_padding_mask(batch_inputs, batch_data_samples)
        out = self.forward_features(batch_inputs, mask)
        losses = self.head_loss(out, batch_data_samples)
        losses['loss_distil'] = self.distil_loss(distil_tokens(out),
                                                 self.teacher_tokens(batch_inputs, mask))
        return losses
