"""Data preprocessors (registered in mmdet's ``MODELS``)."""
from .vidt_data_preprocessor import ViDTDataPreprocessor

__all__ = ['ViDTDataPreprocessor']
