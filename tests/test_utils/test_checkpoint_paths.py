"""Every way mmengine, mmdet and mmpretrain load a checkpoint ends in the safe loader."""
import shutil
import sys
import types

import pytest
import torch
from mmengine.model import BaseModule
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from torch import nn

import mmvidt  # noqa: F401  (installs the safe loader)
from mmvidt.utils import UnsafeCheckpointError, read_checkpoint
from mmvidt.utils import checkpoint_schemes
from mmvidt.utils.checkpoint_schemes import SAFE_SCHEME_LOADERS
from forged_checkpoints import eval_via_getattr_walk, torch_zip, write_marker_code


@pytest.fixture
def marker(tmp_path):
    return tmp_path / 'pwned'


@pytest.fixture
def evil(tmp_path, marker):
    """A checkpoint that runs code wherever getattr is a plain getattr."""
    path = tmp_path / 'evil.pth'
    path.write_bytes(torch_zip(eval_via_getattr_walk(write_marker_code(marker))))
    return path


@pytest.fixture
def genuine(tmp_path):
    path = tmp_path / 'genuine.pth'
    torch.save({'state_dict': nn.Linear(2, 1).state_dict()}, path)
    return path


def test_every_registered_scheme_is_served_by_a_safe_loader():
    """A scheme added to mmengine later fails this test until it is routed to safe_load."""
    assert dict(CheckpointLoader._schemes) == SAFE_SCHEME_LOADERS
    assert mmengine_checkpoint.load_url is checkpoint_schemes.load_url


@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """``torch.hub`` downloads copy ``tmp_path/<name>``; the hub cache lives in tmp_path."""
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    downloads = []

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):
        downloads.append(url)
        shutil.copy(tmp_path / url.rsplit('/', 1)[1], dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download_url_to_file)
    return downloads


def test_http_downloads_load_safely(evil, genuine, marker, fake_download, monkeypatch):
    """mmengine's HTTP loader used torch.hub, which unpickles with weights_only=False."""
    assert list(read_checkpoint('https://example.com/genuine.pth')['state_dict']) == \
        ['weight', 'bias']
    with pytest.raises(UnsafeCheckpointError, match=r'hub/checkpoints/evil.pth: getattr\('):
        load_checkpoint(nn.Linear(2, 1), 'http://example.com/evil.pth')
    # torchvision:// (and mmcls://, open-mmlab:// URLs) download through the same function
    monkeypatch.setattr(mmengine_checkpoint, 'get_torchvision_models',
                        lambda: {'resnet_evil': 'https://example.com/evil.pth'})
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(nn.Linear(2, 1), 'torchvision://resnet_evil')
    assert fake_download == ['https://example.com/genuine.pth', 'http://example.com/evil.pth']
    assert not marker.exists()


def test_object_storage_pavi_and_openmmlab_files_load_safely(evil, marker, tmp_path,
                                                              monkeypatch):
    class Backend:
        def get(self, filepath):
            return evil.read_bytes()

    monkeypatch.setattr(checkpoint_schemes, 'get_file_backend', lambda *args, **kwargs: Backend())
    with pytest.raises(UnsafeCheckpointError, match='s3://bucket/evil.pth: getattr'):
        read_checkpoint('s3://bucket/evil.pth')

    class Model:
        name = 'evil.pth'

        def download(self, path):
            shutil.copy(evil, path)

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth: getattr'):
        read_checkpoint('pavi://models/evil.pth')

    monkeypatch.setattr(mmengine_checkpoint, 'get_external_models',
                        lambda: {'local_evil': 'evil.pth'})
    monkeypatch.setattr(mmengine_checkpoint, '_get_mmengine_home', lambda: str(tmp_path))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth: getattr'):
        read_checkpoint('open-mmlab://local_evil')
    assert not marker.exists()


class Pretrained(BaseModule):

    def __init__(self, init_cfg):
        super().__init__(init_cfg)
        self.linear = nn.Linear(2, 1)


def test_pretrained_init_cfg_loads_safely(evil, marker, tmp_path):
    """``init_cfg=dict(type='Pretrained')``: mmengine's PretrainedInit, with and without prefix."""
    weights = nn.Linear(2, 1).state_dict()
    genuine = tmp_path / 'pretrained.pth'
    torch.save({'state_dict': {**{f'linear.{k}': v for k, v in weights.items()},
                               **{f'backbone.linear.{k}': v for k, v in weights.items()}}},
               genuine)
    for prefix in ({}, {'prefix': 'backbone.'}):
        model = Pretrained(dict(type='Pretrained', checkpoint=str(genuine), **prefix))
        model.init_weights()
        assert torch.equal(model.linear.weight, weights['weight'])
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            Pretrained(dict(type='Pretrained', checkpoint=str(evil), **prefix)).init_weights()
    assert not marker.exists()


def test_mmpretrain_loading_is_safe(evil, marker):
    """mmpretrain builds its models' ``init_cfg`` and ``get_model(pretrained=...)`` on mmengine's
    loaders."""
    from mmengine.config import Config
    from mmpretrain.apis import get_model
    from mmpretrain.registry import MODELS

    cfg = dict(type='ImageClassifier',
               backbone=dict(type='ReXNet', arch='1.0',
                             init_cfg=dict(type='Pretrained', checkpoint=str(evil))),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=2, in_channels=1280))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        MODELS.build(cfg).init_weights()
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        get_model(Config(dict(model=dict(cfg, backbone=dict(type='ReXNet', arch='1.0')))),
                  pretrained=str(evil))
    assert not marker.exists()


def test_runner_load_from_and_resume_refuse(evil, marker, tmp_path):
    from test_safe_checkpoint import RecordState, make_runner
    for resume in (False, True):
        runner = make_runner(tmp_path / f'work_{resume}', 1, RecordState(), load_from=str(evil),
                             resume=resume)
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            runner.train()
    assert not marker.exists()
