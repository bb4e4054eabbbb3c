"""Every checkpoint mmengine loads goes through :func:`~.safe_checkpoint.safe_load`.

mmengine's ``CheckpointLoader`` serves ``load_checkpoint``, ``Runner(load_from=...)``,
``Runner.resume``, ``init_cfg=dict(type='Pretrained')`` (mmengine's ``PretrainedInit``, used by
mmdet and mmpretrain models alike) and mmpretrain's ``get_model(pretrained=...)``. Its loaders
unpickle with ``torch.load`` (local files, ``s3://`` / ``petrel://`` bytes, pavi and
``open-mmlab://`` local files) or with ``torch.hub.load_state_dict_from_url``, which defaults to
``weights_only=False`` (``http(s)://``, and through it ``torchvision://``, ``mmcls://`` and
``open-mmlab://`` URLs). :func:`install_safe_checkpoint_loader` registers the loaders below for
the schemes that call ``torch.load`` and replaces the download function of mmengine's HTTP loader
(``mmengine.runner.checkpoint.load_url``), so that every registered scheme ends in
:func:`safe_load`; :data:`SAFE_SCHEME_LOADERS` lists them (a test checks that no scheme is left).
"""
import io
import os
import tempfile
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlparse

import torch
from mmengine.fileio import get_file_backend
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_checkpoint import safe_load


def load_url(url: str,
             model_dir: Optional[str] = None,
             map_location: Any = None,
             progress: bool = True,
             check_hash: bool = False,
             file_name: Optional[str] = None) -> Any:
    """``torch.hub.load_state_dict_from_url`` with :func:`safe_load` instead of an unrestricted
    ``torch.load``: download into torch hub's cache (once), then load the file safely."""
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached_file = os.path.join(model_dir, file_name or os.path.basename(urlparse(url).path))
    if not os.path.exists(cached_file):
        found = torch.hub.HASH_REGEX.search(os.path.basename(cached_file)) if check_hash else None
        torch.hub.download_url_to_file(url, cached_file, found and found.group(1),
                                       progress=progress)
    return safe_load(cached_file, map_location)


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """Scheme ``''``: a local path."""
    return safe_load(filename, map_location)


def load_from_ceph(filename: str, map_location: Any = None, backend: str = 'petrel') -> Any:
    """Schemes ``s3://`` / ``petrel://``: the bytes of mmengine's file backend."""
    data = get_file_backend(filename, backend_args={'backend': backend}).get(filename)
    return safe_load(io.BytesIO(data), map_location, name=filename)


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """Scheme ``pavi://``: a model downloaded from pavi's model cloud into a temporary folder."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded_file = os.path.join(tmp_dir, model.name)
        model.download(downloaded_file)
        return safe_load(downloaded_file, map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """Schemes ``open-mmlab://`` / ``openmmlab://``: a URL or a file under mmengine's home."""
    model_name = filename.split('://', 1)[1]
    model_name = mmengine_checkpoint.get_deprecated_model_names().get(model_name, model_name)
    model_url = mmengine_checkpoint.get_external_models()[model_name]
    if model_url.startswith(('http://', 'https://')):
        return mmengine_checkpoint.load_from_http(model_url, map_location=map_location)
    return safe_load(os.path.join(mmengine_checkpoint._get_mmengine_home(), model_url),
                     map_location)


#: Scheme prefix -> loader after :func:`install_safe_checkpoint_loader`. mmengine's own HTTP
#: loaders stay: they download with the replaced ``load_url``.
SAFE_SCHEME_LOADERS: Dict[str, Callable[..., Any]] = {
    '': load_from_local,
    r'(\S+\:)?s3://': load_from_ceph,
    r'(\S+\:)?petrel://': load_from_ceph,
    'pavi://': load_from_pavi,
    'open-mmlab://': load_from_openmmlab,
    'openmmlab://': load_from_openmmlab,
    'http://': mmengine_checkpoint.load_from_http,
    'https://': mmengine_checkpoint.load_from_http,
    'modelzoo://': mmengine_checkpoint.load_from_torchvision,
    'torchvision://': mmengine_checkpoint.load_from_torchvision,
    'mmcls://': mmengine_checkpoint.load_from_mmcls,
}


def install_safe_checkpoint_loader() -> None:
    """Make every mmengine checkpoint scheme load through :func:`safe_load` (idempotent)."""
    mmengine_checkpoint.load_url = load_url
    for prefix, loader in SAFE_SCHEME_LOADERS.items():
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)
