"""An assigner wrapper that keeps the (query, ground truth) pairs of every assignment."""
from typing import List, Optional, Tuple

import torch
from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmengine.structures import InstanceData
from torch import Tensor


class RecordingAssigner:
    """Delegates to an assigner (e.g. mmdet's ``HungarianAssigner``) and records its matches.

    mmdet's DETR loss machinery (``get_targets``) assigns every image of a prediction level but
    returns only the targets. ViDT+ supervises more per matched query than those targets carry
    (the IoU-aware score and the mask vector of the matched ground truth), and its losses must
    use the very matching of the box losses (as the official criterion does). Wrapping the head's
    assigner lets mmdet's code do the matching once while the head reads the pairs back.

    Attributes:
        matches: per ``assign`` call, in call order, ``(query_indices, gt_indices)`` (both (n,)
            int64) of the matched pairs; :meth:`clear` empties it.
    """

    def __init__(self, assigner: BaseAssigner) -> None:
        self.assigner = assigner
        self.matches: List[Tuple[Tensor, Tensor]] = []

    # Hungarian matching runs on the host (scipy): compiling it gains nothing, and the growing
    # list of matches would recompile the frame at every call
    @torch.compiler.disable
    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               img_meta: Optional[dict] = None, **kwargs) -> AssignResult:
        result = self.assigner.assign(pred_instances, gt_instances, img_meta=img_meta, **kwargs)
        queries = torch.nonzero(result.gt_inds > 0).flatten()
        self.matches.append((queries, result.gt_inds[queries] - 1))
        return result

    def clear(self) -> None:
        self.matches.clear()
