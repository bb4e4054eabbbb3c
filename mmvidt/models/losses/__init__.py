"""mmvidt losses."""
from .iou_aware_loss import IoUAwareLoss  # noqa: F401
from .token_label_loss import TokenLabelLoss  # noqa: F401
from .token_matching_loss import TokenMatchingLoss  # noqa: F401
