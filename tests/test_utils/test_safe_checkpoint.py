"""Genuine checkpoints load through the safe loader exactly as an unrestricted load reads them;
files that are no checkpoint get a clear error naming them."""
import argparse
import copy
import io
import os
from collections import Counter, OrderedDict

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn
from torch.utils.data import Dataset

import mmvidt  # noqa: F401  (installs the safe loader)
from mmvidt.utils import InvalidCheckpointError, UnsafeCheckpointError, safe_load
from mmvidt.utils.safe_checkpoint import SAFE_GLOBALS


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
            scheduler=copy.deepcopy(runner.param_schedulers[0].state_dict()),
            log_scalars={name: copy.deepcopy(buffer.data)
                         for name, buffer in runner.message_hub.log_scalars.items()})

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
    # mmengine's checkpoint really holds objects beyond torch's defaults, all of them mapped to
    # the safe loader's stand-ins ...
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint)))
    assert {'builtins.getattr', 'mmengine.logging.history_buffer.HistoryBuffer',
            'numpy.dtype', 'numpy.ndarray'} <= needed
    assert needed <= {name for _, name in SAFE_GLOBALS}
    saved = safe_load(checkpoint)
    assert_same_data(saved, torch.load(checkpoint, weights_only=False))  # a file we trust

    # ... resuming epoch 1 restores model, optimizer, scheduler and counters ...
    resumed = RecordState()
    make_runner(tmp_path / 'b', 2, resumed, load_from=str(checkpoint), resume=True).train()
    start = resumed.snapshots['start']
    assert (start['epoch'], start['iter']) == (saved['meta']['epoch'],
                                               saved['meta']['iter']) == (1, 4)
    assert start['lr'] == saved['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.025)
    assert start['scheduler'] == saved['param_schedulers'][0]
    saved_scalars = saved['message_hub']['log_scalars']
    assert sorted(start['log_scalars']) == sorted(saved_scalars) and saved_scalars
    for name, (logs, counts) in start['log_scalars'].items():
        assert isinstance(saved_scalars[name], HistoryBuffer)
        np.testing.assert_array_equal(logs, saved_scalars[name].data[0])
        np.testing.assert_array_equal(counts, saved_scalars[name].data[1])
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




def assert_same_data(loaded, expected, path='checkpoint'):
    """``loaded`` equals ``expected`` in type, structure, dtype and value, recursively."""
    assert type(loaded) is type(expected), (path, type(loaded), type(expected))
    if isinstance(expected, dict):
        assert list(loaded) == list(expected), path
        for key in expected:
            assert_same_data(loaded[key], expected[key], f'{path}[{key!r}]')
    elif isinstance(expected, (list, tuple, set)):
        assert len(loaded) == len(expected), path
        for i, (a, b) in enumerate(zip(sorted(loaded, key=repr) if isinstance(loaded, set)
                                       else loaded,
                                       sorted(expected, key=repr) if isinstance(expected, set)
                                       else expected)):
            assert_same_data(a, b, f'{path}[{i}]')
    elif isinstance(expected, torch.Tensor):
        assert loaded.dtype == expected.dtype and torch.equal(loaded, expected), path
    elif isinstance(expected, np.ndarray):
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape, path
        assert loaded.flags['F_CONTIGUOUS'] == expected.flags['F_CONTIGUOUS'], path
        assert loaded.flags['WRITEABLE'], path
        np.testing.assert_array_equal(loaded, expected)
    elif isinstance(expected, (HistoryBuffer, argparse.Namespace)):
        assert_same_data(dict(sorted(vars(loaded).items())),
                         dict(sorted(vars(expected).items())), path)
    elif isinstance(expected, np.generic):
        assert loaded.dtype == expected.dtype and loaded.tobytes() == expected.tobytes(), path
    else:
        assert loaded == expected, path


def history_buffer(values):
    buffer = HistoryBuffer(max_length=5)
    for value in values:
        buffer.update(value)
    return buffer


NUMERIC_DTYPES = ['?', 'i1', 'u1', '<i2', '>i2', 'u2', 'i4', '>u4', 'i8', 'u8', 'f2', '>f4',
                  'f4', 'f8', '>f8', 'g', 'c8', '>c16', 'G']


def genuine_checkpoints():
    """What mmvidt must keep loading: mmengine, official ViDT / PiT / ReXNet and timm files."""
    weights = OrderedDict(
        [('backbone.stem.weight', torch.randn(4, 3, 3, 3)), ('head.fc.bias', torch.zeros(10)),
         ('bn.num_batches_tracked', torch.tensor(7)), ('half', torch.ones(2, dtype=torch.half))])
    weights['view'] = weights['backbone.stem.weight'][1:3]  # shares its storage
    shared = np.arange(6, dtype=np.int64).reshape(2, 3)
    official_args = argparse.Namespace(
        lr=1e-4, backbone_name='swin_nano', det_token_num=100, with_box_refine=True,
        coco_path=None, lr_drop=40, epff=False, frozen_weights=None, method='vidt',
        cross_indices=[3], dec_layers=6, eval_size=800, seed=42, distributed=False)
    return {
        'mmengine': dict(
            meta=dict(epoch=2, iter=8, seed=0, hook_msgs=dict(last_ckpt='work/epoch_2.pth')),
            state_dict=weights,
            message_hub=dict(
                log_scalars=OrderedDict(loss=history_buffer([0.5, 0.25, 2.0]),
                                        lr=history_buffer([1e-4] * 7)),
                runtime_info=OrderedDict(eta=np.float64(12.5), iter=np.int64(8), cfg='x = 1'),
                resumed_keys=OrderedDict(eta=True)),
            optimizer=dict(state={0: dict(step=torch.tensor(8.), exp_avg=torch.ones(3))},
                           param_groups=[dict(lr=1e-4, betas=(0.9, 0.999), params=[0])]),
            param_schedulers=[dict(milestones=Counter({8: 1}), gamma=0.1, last_epoch=2)]),
        'official_vidt': dict(model=weights, optimizer=dict(state={}, param_groups=[]),
                              lr_scheduler=dict(step_size=40, last_epoch=49), epoch=49,
                              args=official_args),
        'official_pit': dict(model=weights),
        'official_rexnet': weights,
        'timm': dict(epoch=299, arch='pit_s_224', state_dict=weights, version=2, metric=80.9,
                     args=argparse.Namespace(model='pit_s_224', lr=5e-4, aa='rand-m9-mstd0.5',
                                             mixup=0.8, empty=argparse.Namespace()),
                     amp_scaler=dict(scale=65536.0, growth_factor=2.0)),
        'numpy': dict(
            arrays=[(np.arange(12).reshape(3, 4) % 3).astype(dtype) for dtype in NUMERIC_DTYPES],
            scalars=[np.array(3, dtype=dtype)[()] for dtype in NUMERIC_DTYPES],
            fortran=np.asfortranarray(np.arange(6.).reshape(2, 3)), zero_d=np.array(2.5),
            transposed_3d=np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1),
            in_tuple=(np.float32(1.5), (shared, )), in_set={np.int64(3), 4}, shared=[shared]),
    }


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('kind', list(genuine_checkpoints()))
def test_genuine_checkpoints_load_as_an_unrestricted_load_reads_them(tmp_path, kind, legacy):
    path = tmp_path / f'{kind}.pth'
    torch.save(genuine_checkpoints()[kind], path, _use_new_zipfile_serialization=not legacy)
    loaded = safe_load(path, map_location='cpu')
    assert_same_data(loaded, torch.load(path, weights_only=False))  # files this test wrote
    if kind == 'numpy':  # one object referenced twice stays one object
        assert loaded['shared'][0] is loaded['in_tuple'][1][0]
    if kind == 'mmengine':
        assert loaded['message_hub']['log_scalars']['loss'].mean() == pytest.approx(11 / 12)
        assert loaded['state_dict']['view'].untyped_storage().data_ptr() == \
            loaded['state_dict']['backbone.stem.weight'].untyped_storage().data_ptr()
    # the same bytes through a file object (e.g. downloaded into memory)
    assert_same_data(safe_load(io.BytesIO(path.read_bytes())), loaded)


def test_mmvidt_leaves_torch_allow_list_alone_and_ignores_process_wide_additions(tmp_path):
    """Nothing of mmvidt is added to torch's process-wide allow-list, and what others add there
    (here ``exec``) does not reach the safe loader; it is restored afterwards."""
    listed = {getattr(g, '__qualname__', str(g)) for g in torch.serialization.get_safe_globals()}
    assert not listed & {'getattr', 'HistoryBuffer', 'Namespace', 'ndarray', 'dtype'}

    class Exec:
        def __reduce__(self):
            return exec, ('1', )

    path = tmp_path / 'exec.pth'
    torch.save({'x': Exec()}, path)
    torch.serialization.add_safe_globals([exec])
    try:
        with pytest.raises(UnsafeCheckpointError, match='GLOBAL exec'):
            safe_load(path)
        assert exec in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals([g for g in torch.serialization.get_safe_globals()
                                              if g is not exec])


@pytest.fixture
def not_checkpoints(tmp_path):
    genuine = io.BytesIO()
    torch.save({'w': torch.randn(1000)}, genuine)
    legacy = io.BytesIO()
    torch.save({'w': torch.randn(1000)}, legacy, _use_new_zipfile_serialization=False)
    files = {'empty.pth': b'', 'random.pth': os.urandom(4096), 'text.pth': b'not a model\n',
             'truncated_zip.pth': genuine.getvalue()[:3000],
             'truncated_legacy.pth': legacy.getvalue()[:2000]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize('name, message', [
    ('empty.pth', r'empty.pth is empty \(0 bytes\), not a checkpoint'),
    ('random.pth', r'random.pth is not a torch checkpoint \(neither a zip archive written by '
     r'torch.save nor a legacy torch file\)'),
    ('text.pth', 'text.pth is not a torch checkpoint'),
    ('truncated_zip.pth', 'truncated_zip.pth: damaged or truncated zip archive'),
    ('truncated_legacy.pth', 'truncated_legacy.pth is not a readable torch checkpoint'),
])
def test_files_that_are_no_checkpoint_get_a_clear_error(not_checkpoints, name, message):
    path = not_checkpoints / name
    with pytest.raises(InvalidCheckpointError, match=message) as error:
        safe_load(path)
    assert str(path) in str(error.value) and '\n' not in str(error.value)
    with pytest.raises(InvalidCheckpointError, match=message):  # the same through mmengine
        load_checkpoint(ToyModel(), str(path))


def test_missing_directory_and_special_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'checkpoint file not found: {tmp_path}/nope'):
        load_checkpoint(ToyModel(), str(tmp_path / 'nope.pth'))
    with pytest.raises(IsADirectoryError, match=f'{tmp_path} is a directory, not a checkpoint'):
        safe_load(tmp_path)
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    with pytest.raises(InvalidCheckpointError, match='fifo is not a regular file'):
        safe_load(fifo)


def test_concurrent_safe_loads_do_not_disturb_each_other(tmp_path):
    """The allow-list is swapped under a lock: threads loading at once all get their data."""
    from concurrent.futures import ThreadPoolExecutor
    path = tmp_path / 'mmengine.pth'
    torch.save(genuine_checkpoints()['mmengine'], path)
    expected = torch.load(path, weights_only=False)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: safe_load(path), range(16)))
    for loaded in results:
        assert_same_data(loaded, expected)
