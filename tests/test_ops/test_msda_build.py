"""Building, loading and reporting the compiled MSDA kernels."""
import os
import os.path as osp
import shutil
import types

import pytest
import torch

from mmvidt.ops import (available_msda_backends, msda_backend_info, msda_build, msda_compiled,
                        multi_scale_deform_attn, multi_scale_deformable_attn)

from msda_inputs import make_inputs

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_installed_package_has_the_cpu_kernel():
    """setup.py builds mmvidt._ext_cpu unless told not to (MMVIDT_WITH_CPU=0)."""
    if os.environ.get('MMVIDT_WITH_CPU') == '0':
        pytest.skip('installed with MMVIDT_WITH_CPU=0')
    info = msda_backend_info()
    assert info['cpu']['backend'] == 'cpu', info['cpu']['kernels']
    assert 'cpu' in available_msda_backends()


def test_backend_info_reports_every_device():
    info = msda_backend_info()
    assert set(info) == {'cpu', 'cuda'}
    for device_type, entry in info.items():
        assert entry['backend'] in (device_type, 'pytorch')
        # either where the kernels came from, or why they are missing
        assert ('not available' in entry['kernels']) == (entry['backend'] == 'pytorch')


def test_auto_dispatch_runs_the_registered_kernel(monkeypatch):
    calls = []

    def fake_kernel(*args):
        calls.append(args)
        return torch.zeros(())

    monkeypatch.setitem(multi_scale_deform_attn._COMPILED_BACKENDS, 'cpu', fake_kernel)
    inputs = make_inputs([(4, 5)])
    multi_scale_deformable_attn(*inputs)
    assert len(calls) == 1
    multi_scale_deformable_attn(*inputs, backend='pytorch')
    assert len(calls) == 1


def test_missing_extension_falls_back_with_a_reason(monkeypatch):
    def no_module(name):
        raise ImportError(f'No module named {name!r}')

    monkeypatch.setattr(msda_compiled.importlib, 'import_module', no_module)
    monkeypatch.delenv('MMVIDT_JIT', raising=False)
    status = dict(msda_compiled._KERNEL_STATUS)
    try:
        assert msda_compiled._load_kernels('cpu') is None
        assert "mmvidt._ext_cpu not available (ImportError: No module named 'mmvidt._ext_cpu')" \
            == msda_compiled._KERNEL_STATUS['cpu']
        # MMVIDT_JIT=1 compiles the sources instead
        built = types.SimpleNamespace(__file__='/tmp/jit/mmvidt_msda_cpu_jit.so')
        monkeypatch.setenv('MMVIDT_JIT', '1')
        monkeypatch.setattr(msda_compiled, 'load_msda_extension', lambda kind: built)
        assert msda_compiled._load_kernels('cpu') is built
        assert msda_compiled._KERNEL_STATUS['cpu'] == 'JIT build /tmp/jit/mmvidt_msda_cpu_jit.so'
    finally:
        msda_compiled._KERNEL_STATUS.update(status)


@pytest.mark.parametrize('env, expected', [
    ({}, ['cpu']),
    ({'MMVIDT_WITH_CUDA': '1'}, ['cpu', 'cuda']),
    ({'MMVIDT_WITH_CPU': '0', 'MMVIDT_WITH_CUDA': '1'}, ['cuda']),
    ({'MMVIDT_WITH_CPU': '0', 'MMVIDT_WITH_CUDA': '0'}, []),
])
def test_setup_builds_the_requested_extensions(monkeypatch, env, expected):
    monkeypatch.delenv('MMVIDT_WITH_CPU', raising=False)
    monkeypatch.delenv('MMVIDT_WITH_CUDA', raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert msda_build.wanted_extensions() == expected
    kwargs = msda_build.setup_extensions(REPO_ROOT)
    assert [ext.name for ext in kwargs['ext_modules']] == [
        msda_build.EXTENSION_MODULES[kind] for kind in expected]
    for ext in kwargs['ext_modules']:
        for source in ext.sources:  # relative to the project root, and present
            assert not osp.isabs(source) and osp.isfile(osp.join(REPO_ROOT, source)), source


def test_unknown_extension_kind():
    with pytest.raises(ValueError, match="unknown MSDA extension 'rocm'"):
        msda_build.load_msda_extension('rocm')


@pytest.mark.slow
def test_cpu_sources_jit_build(tmp_path):
    """The working tree's CPU sources compile with the JIT path and match the reference."""
    kernels = msda_build.load_msda_extension('cpu', build_directory=str(tmp_path))
    value, shapes, start, locations, weights = make_inputs([(5, 6), (2, 3)], dtype=torch.float64)
    out = msda_compiled.MSDACompiledFunction.apply(kernels, value, shapes, locations, weights)
    expected = multi_scale_deformable_attn(value, shapes, start, locations, weights,
                                           backend='pytorch')
    torch.testing.assert_close(out, expected)


def test_cuda_sources_compile_and_link(tmp_path, monkeypatch):
    """The CUDA kernels compile, link and import without a GPU (about two minutes; part of the
    default run so that CI proves the CUDA sources build).

    Needs nvcc (CUDA_HOME, default /usr/local/cuda); builds for TORCH_CUDA_ARCH_LIST, default
    "9.0" (one architecture keeps it short) when no GPU is visible.
    """
    cuda_home = os.environ.get('CUDA_HOME', '/usr/local/cuda')
    if shutil.which('nvcc', path=osp.join(cuda_home, 'bin')) is None:
        pytest.skip(f'no nvcc under {cuda_home}/bin (set CUDA_HOME)')
    monkeypatch.setenv('CUDA_HOME', cuda_home)
    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setattr(cpp_extension, 'CUDA_HOME', cuda_home)
    if not torch.cuda.is_available() and not os.environ.get('TORCH_CUDA_ARCH_LIST'):
        monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    kernels = msda_build.load_msda_extension('cuda', build_directory=str(tmp_path))
    assert callable(kernels.msda_forward) and callable(kernels.msda_backward)
    value, shapes, _, locations, weights = make_inputs([(4, 5)])
    with pytest.raises(RuntimeError, match='msda_cuda: tensors must be on a CUDA device'):
        kernels.msda_forward(value, shapes, locations, weights)
