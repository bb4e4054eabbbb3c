"""ViDT's token-matching distillation loss (ViDT paper Sec. 3.3)."""
from typing import NamedTuple, Sequence

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn


class DistilTokens(NamedTuple):
    """The tokens a ViDT exposes to distillation (all ``d`` wide, so any body sizes match).

    patch_tokens: L maps (B, d, H_l, W_l): the neck's projected patch maps (decoder memory).
    det_tokens: (B, N, d) projected backbone [DET] tokens (the decoder's queries).
    hidden_states: (num_layers + 1, B, N, d) every decoder state, level 0 = ``det_tokens``.
    """
    patch_tokens: Sequence[Tensor]
    det_tokens: Tensor
    hidden_states: Tensor


def mean_token_distance(student: Tensor, teacher: Tensor, channel_dim: int = -1) -> Tensor:
    """Mean over tokens of the Euclidean distance between matched token vectors."""
    return (student - teacher).pow(2).sum(channel_dim).sqrt().mean()


@MODELS.register_module()
class TokenMatchingLoss(nn.Module):
    """Distance between the tokens of a student ViDT and a frozen teacher ViDT.

    ``loss = loss_weight * sqrt(sum_l dist(P_l) + dist(T) + (L + 1) * dist(H))`` where ``dist`` is
    the mean per-token L2 distance, P_l the projected patch maps, T the projected [DET] tokens
    and H all L + 1 decoder states (averaged over all of them, then counted L + 1 times), as the
    official criterion. Teacher tokens are detached.

    Args:
        loss_weight: official ``--distil_loss_coef`` (4.0).
    """

    def __init__(self, loss_weight: float = 4.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student: DistilTokens, teacher: DistilTokens) -> Tensor:
        """
        Args:
            student, teacher: :class:`DistilTokens` of equal shapes (same number of levels,
                [DET] tokens, decoder layers and neck width).

        Returns:
            scalar loss (already multiplied by ``loss_weight``).
        """
        if len(student.patch_tokens) != len(teacher.patch_tokens):
            raise ValueError(f'student has {len(student.patch_tokens)} patch-token levels, the '
                             f'teacher {len(teacher.patch_tokens)}')
        # (name, student, teacher, channel axis); patch maps are channel-first
        matched = [(f'patch_tokens[{i}]', mine, theirs, 1)
                   for i, (mine, theirs) in enumerate(zip(student.patch_tokens,
                                                          teacher.patch_tokens))]
        matched += [('det_tokens', student.det_tokens, teacher.det_tokens, -1),
                    ('hidden_states', student.hidden_states, teacher.hidden_states, -1)]
        for name, mine, theirs, _ in matched:
            if mine.shape != theirs.shape:
                raise ValueError(f'token matching needs equal shapes: student {name} '
                                 f'{tuple(mine.shape)} vs teacher {tuple(theirs.shape)} (same '
                                 'neck width, [DET] tokens and decoder layers?)')
        distances = [mean_token_distance(mine, theirs.detach(), dim)
                     for _, mine, theirs, dim in matched]
        # the decoder states count once per level: their mean distance times L + 1
        total = sum(distances[:-1]) + student.hidden_states.shape[0] * distances[-1]
        return self.loss_weight * torch.sqrt(total)
