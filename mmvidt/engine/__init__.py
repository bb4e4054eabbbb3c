"""Training-loop components (registered in mmengine's registries)."""
from .cpu_dist import setup_cpu_distributed, teardown_distributed
from .flush_denormal_hook import FlushDenormalHook
from .optim_wrapper_constructor import ViDTOptimWrapperConstructor

__all__ = [
    'FlushDenormalHook', 'ViDTOptimWrapperConstructor', 'setup_cpu_distributed',
    'teardown_distributed'
]
