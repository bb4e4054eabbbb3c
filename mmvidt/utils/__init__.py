"""Utilities shared by every layer: safe checkpoint reading and writing, state-dict checks."""
from .checkpoint_reader import read_checkpoint, state_dict_of
from .checkpoint_schemes import install_safe_checkpoint_loader
from .checkpoint_writer import save_checkpoint_file, save_converted
from .safe_checkpoint import InvalidCheckpointError, UnsafeCheckpointError, safe_load
from .state_dict import (StateDictMismatchError, check_backbone_part, check_state_dict,
                         rename_keys, summarize_keys)
from .tool_errors import run_tool

__all__ = [
    'read_checkpoint', 'state_dict_of', 'install_safe_checkpoint_loader', 'save_checkpoint_file',
    'save_converted', 'InvalidCheckpointError', 'UnsafeCheckpointError', 'safe_load',
    'StateDictMismatchError', 'check_backbone_part', 'check_state_dict', 'rename_keys',
    'summarize_keys', 'run_tool'
]
