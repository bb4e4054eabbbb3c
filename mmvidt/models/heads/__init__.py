"""mmvidt classification heads (registered in mmpretrain's MODELS)."""
from .dropout_linear_head import DropoutLinearClsHead

__all__ = ['DropoutLinearClsHead']
