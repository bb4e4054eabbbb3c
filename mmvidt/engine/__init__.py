"""Training-loop components (registered in mmengine's registries)."""
from .autocast_optim_wrapper import AutocastOptimWrapper
from .cpu_dist import setup_cpu_distributed, teardown_distributed
from .flush_denormal_hook import FlushDenormalHook
from .optim_wrapper_constructor import ViDTOptimWrapperConstructor
from .runner_cli import (add_runner_args, distributed_runner, load_runner_config,
                         parse_runner_args)
from .synthetic_batch import synthetic_detection_batch

__all__ = [
    'AutocastOptimWrapper', 'FlushDenormalHook', 'ViDTOptimWrapperConstructor', 'add_runner_args',
    'distributed_runner', 'load_runner_config', 'parse_runner_args', 'setup_cpu_distributed',
    'synthetic_detection_batch', 'teardown_distributed'
]
