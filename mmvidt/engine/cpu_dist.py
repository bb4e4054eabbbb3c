"""Data-parallel runs on machines without CUDA (CI, CPU clusters) with mmengine's launcher."""
import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> None:
    """Prepare ``cfg`` (``launcher='pytorch'``, e.g. from torchrun) for a CUDA-less machine.

    mmengine 0.10.7 assumes CUDA for distributed runs: its ``pytorch`` launcher calls
    ``torch.cuda.set_device`` and its default DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which
    DDP rejects for CPU modules. Without CUDA this initialises the process group itself with gloo
    (the runner then skips its own initialisation; ``env_cfg.dist_cfg.backend`` is set to match)
    and sets ``model_wrapper_cfg.device_ids=None``.
    A no-op with CUDA or without a launcher.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'launcher {cfg.launcher!r} needs CUDA; on CPU-only machines use '
                           'torchrun (tools/dist_train.sh, --launcher pytorch)')
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel',
                                                       broadcast_buffers=False,
                                                       find_unused_parameters=cfg.get(
                                                           'find_unused_parameters', False))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg


def teardown_distributed() -> None:
    """Destroy the default process group, if any, before the interpreter exits.

    Left to interpreter shutdown, gloo's background threads can be torn down while still
    running ("terminate called without an active exception", SIGABRT) after a successful run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
