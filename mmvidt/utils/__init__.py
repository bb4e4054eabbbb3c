"""Utilities shared by every layer: safe checkpoint reading and writing, state-dict checks."""
from .checkpoint_reader import read_checkpoint, state_dict_of
from .checkpoint_writer import save_checkpoint_file, save_converted
from .safe_checkpoint import (UnsafeCheckpointError, allow_checkpoint_types,
                              install_safe_checkpoint_loader, safe_load)
from .state_dict import (StateDictMismatchError, check_backbone_part, check_state_dict,
                         rename_keys, summarize_keys)

__all__ = [
    'read_checkpoint', 'state_dict_of', 'save_checkpoint_file', 'save_converted',
    'UnsafeCheckpointError', 'allow_checkpoint_types', 'install_safe_checkpoint_loader',
    'safe_load', 'StateDictMismatchError', 'check_backbone_part', 'check_state_dict',
    'rename_keys', 'summarize_keys'
]
