"""Task modules: assigner helpers shared by the ViDT heads."""
from .recording_assigner import RecordingAssigner

__all__ = ['RecordingAssigner']
