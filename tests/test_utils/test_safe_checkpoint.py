"""mmengine checkpoints load and resume with weights_only semantics; malicious ones are refused."""
import copy

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn
from torch.utils.data import Dataset

import mmvidt  # noqa: F401  (installs the safe loader)
from mmvidt.utils import UnsafeCheckpointError, safe_load
from mmvidt.utils.safe_checkpoint import checkpoint_safe_globals


class ToyRegression(Dataset):

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 3, generator=gen)
        self.y = self.x @ torch.tensor([1., -2., 0.5]) + 0.3

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return dict(inputs=self.x[index], target=self.y[index])


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, inputs, target=None, mode='loss'):
        pred = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)[:, 0]
        target = torch.stack(target) if isinstance(target, list) else target
        return dict(loss=((pred - target)**2).mean())


class RecordState(Hook):
    """Snapshot what a resume must restore, at the start and end of training."""

    def __init__(self):
        self.snapshots = {}

    def _snapshot(self, runner, when):
        optim = runner.optim_wrapper.optimizer
        self.snapshots[when] = dict(
            epoch=runner.epoch,
            iter=runner.iter,
            weights=copy.deepcopy(runner.model.state_dict()),
            optim_state=copy.deepcopy(optim.state_dict()['state']),
            lr=optim.param_groups[0]['lr'],
            scheduler=copy.deepcopy(runner.param_schedulers[0].state_dict()))

    def before_train(self, runner):
        self._snapshot(runner, 'start')

    def after_train(self, runner):
        self._snapshot(runner, 'end')


def make_runner(work_dir, max_epochs, hook, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyRegression(), sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1, 2], gamma=0.5, by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook],
        randomness=dict(seed=0),
        default_scope='mmengine',
        **kwargs)


def assert_same_state(a, b):
    assert a['epoch'] == b['epoch'] and a['iter'] == b['iter']
    assert a['lr'] == pytest.approx(b['lr'])
    assert a['scheduler'] == b['scheduler']
    for key in a['weights']:
        torch.testing.assert_close(a['weights'][key], b['weights'][key], rtol=0, atol=0)
    for param_id, state in a['optim_state'].items():
        for key, value in state.items():
            torch.testing.assert_close(value, b['optim_state'][param_id][key], rtol=0, atol=0)


def test_resume_round_trip_restores_everything(tmp_path):
    first = RecordState()
    make_runner(tmp_path / 'a', 2, first).train()
    checkpoint = tmp_path / 'a' / 'epoch_1.pth'
    # mmengine's checkpoint really holds non-tensor types that plain weights_only rejects ...
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint)))
    assert needed, 'expected numpy / HistoryBuffer objects in an mmengine checkpoint'
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in checkpoint_safe_globals()}
    # getattr is audited per file instead of allow-listed (HistoryBuffer statistics methods)
    assert needed - allowed == {'builtins.getattr'}, needed - allowed

    # ... resuming epoch 1 restores model, optimizer, scheduler and counters ...
    resumed = RecordState()
    make_runner(tmp_path / 'b', 2, resumed, load_from=str(checkpoint), resume=True).train()
    saved = safe_load(checkpoint)
    start = resumed.snapshots['start']
    assert (start['epoch'], start['iter']) == (saved['meta']['epoch'], saved['meta']['iter']) == (1, 4)
    assert start['lr'] == saved['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.025)
    assert start['scheduler'] == saved['param_schedulers'][0]
    for key, value in saved['state_dict'].items():
        torch.testing.assert_close(start['weights'][key], value, rtol=0, atol=0)
    for param_id, state in saved['optimizer']['state'].items():
        for key, value in state.items():
            torch.testing.assert_close(start['optim_state'][param_id][key], value, rtol=0, atol=0)
    # ... so that training on gives exactly what an uninterrupted run gave.
    assert_same_state(resumed.snapshots['end'], first.snapshots['end'])

    # load_from without resume loads the weights only
    model = ToyModel()
    load_checkpoint(model, str(checkpoint))
    for key, value in saved['state_dict'].items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


class ExecutesCode:
    """Pickles into a call of ``exec``: what a malicious checkpoint looks like."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({str(self.marker)!r}, "w").write("pwned")', )


def test_malicious_checkpoint_is_refused_and_code_does_not_run(tmp_path):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=ToyModel().state_dict(), meta=ExecutesCode(marker)), evil)

    with pytest.raises(UnsafeCheckpointError, match=r'refusing to load checkpoint .*evil\.pth.*exec'):
        load_checkpoint(ToyModel(), str(evil))
    with pytest.raises(UnsafeCheckpointError, match='arbitrary code'):
        safe_load(evil)
    runner = make_runner(tmp_path / 'r', 1, RecordState(), load_from=str(evil))
    with pytest.raises(UnsafeCheckpointError):
        runner.train()
    assert not marker.exists()


class FetchesWriter:
    """Pickles into ``getattr(numpy.ndarray, 'tofile')``: a file-writing method."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_getattr_beyond_history_buffer_methods_is_refused(tmp_path):
    sneaky = tmp_path / 'sneaky.pth'
    torch.save(dict(state_dict=ToyModel().state_dict(), meta=FetchesWriter()), sneaky)
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(numpy.ndarray, 'tofile'\)"):
        load_checkpoint(ToyModel(), str(sneaky))


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint(ToyModel(), str(tmp_path / 'nope.pth'))
