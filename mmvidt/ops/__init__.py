"""Operators: multi-scale deformable attention (functional API, layer, backends)."""
from .ms_deform_attn import MSDeformAttn
from .msda_backends import (BACKENDS, available_msda_backends, register_msda_backend,
                            resolve_msda_backend)
from .msda_compiled import msda_backend_info
from .msda_reference import msda_pytorch
from .msda_validation import msda_level_shapes, msda_level_start_index
from .multi_scale_deform_attn import msda_sampling_locations, multi_scale_deformable_attn

__all__ = [
    'MSDeformAttn', 'msda_backend_info', 'BACKENDS', 'available_msda_backends', 'msda_level_shapes',
    'msda_level_start_index', 'msda_pytorch', 'msda_sampling_locations',
    'multi_scale_deformable_attn', 'register_msda_backend', 'resolve_msda_backend'
]
