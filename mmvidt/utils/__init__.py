"""Utilities."""
from .safe_checkpoint import (UnsafeCheckpointError, allow_checkpoint_types,
                              install_safe_checkpoint_loader, safe_load)

__all__ = [
    'UnsafeCheckpointError', 'allow_checkpoint_types', 'install_safe_checkpoint_loader',
    'safe_load'
]
