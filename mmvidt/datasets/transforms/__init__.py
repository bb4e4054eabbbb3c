"""Data transforms (registered in mmdet's ``TRANSFORMS``)."""
from .vidt_resize import ViDTResize, vidt_resize_shape

__all__ = ['ViDTResize', 'vidt_resize_shape']
