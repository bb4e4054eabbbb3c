"""Building, loading and reporting the compiled MSDA kernels."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import types

import pytest
import torch
from setuptools import Distribution

from mmvidt.ops import (available_msda_backends, msda_backend_info, msda_build, msda_compiled,
                        multi_scale_deformable_attn)

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
    multi_scale_deformable_attn(*make_inputs([(4, 5)]))  # 'auto' checks the float32 CPU kernel
    info = msda_backend_info()
    assert set(info) == {'cpu', 'cuda'}
    for device_type, entry in info.items():
        assert entry['backend'] in (device_type, 'pytorch')
        # either where the kernels came from, or why they are missing
        assert ('not available' in entry['kernels']) == (entry['backend'] == 'pytorch')
    if info['cpu']['backend'] == 'cpu':
        assert info['cpu']['checks']['float32'] == {
            'backend': 'cpu',
            'reason': 'agrees with the PyTorch reference'
        }


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


def test_import_compiles_nothing_unless_asked():
    """Without MMVIDT_JIT=1, importing mmvidt never starts a compiler, even when the prebuilt
    kernels are missing: it falls back to the reference and says why."""
    script = '''
import sys
sys.modules['mmvidt._ext_cpu'] = None  # as if the kernel were not built
sys.modules['mmvidt._ext_cuda'] = None
import torch.utils.cpp_extension as cpp_extension
def refuse(*args, **kwargs):
    raise AssertionError('import mmvidt started a JIT build')
cpp_extension.load = refuse
import mmvidt
from mmvidt.ops import msda_backend_info
info = msda_backend_info()
assert info['cpu']['backend'] == 'pytorch', info
print(info['cpu']['kernels'])
'''
    env = {k: v for k, v in os.environ.items() if k != 'MMVIDT_JIT'}
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True,
                            env=env,
                            cwd=REPO_ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'mmvidt._ext_cpu not available' in result.stdout


@pytest.mark.parametrize(
    'env, expected, cuda_optional',
    [
        ({}, ['cpu'], None),
        ({
            'MMVIDT_WITH_CUDA': '1'
        }, ['cpu', 'cuda'], False),
        ({
            'MMVIDT_WITH_CPU': '0',
            'MMVIDT_WITH_CUDA': '1'
        }, ['cuda'], False),
        ({
            'MMVIDT_WITH_CPU': '0',
            'MMVIDT_WITH_CUDA': '0'
        }, [], None),
        ({
            'GPU_VISIBLE': '1'
        }, ['cpu', 'cuda'], True),  # built when a GPU is seen, but optional
    ])
def test_setup_builds_the_requested_extensions(monkeypatch, env, expected, cuda_optional):
    monkeypatch.delenv('MMVIDT_WITH_CPU', raising=False)
    monkeypatch.delenv('MMVIDT_WITH_CUDA', raising=False)
    gpu_visible = env.pop('GPU_VISIBLE', None) is not None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu_visible)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert msda_build.wanted_extensions() == expected
    kwargs = msda_build.setup_extensions(REPO_ROOT)
    assert [ext.name for ext in kwargs['ext_modules']
            ] == [msda_build.EXTENSION_MODULES[kind] for kind in expected]
    for ext in kwargs['ext_modules']:
        for source in ext.sources:  # relative to the project root, and present
            assert not osp.isabs(source) and osp.isfile(osp.join(REPO_ROOT, source)), source
        is_cuda = ext.name == msda_build.EXTENSION_MODULES['cuda']
        assert bool(ext.optional) == (is_cuda and cuda_optional)


def build_two_extensions(tmp_path, broken_is_optional):
    """Run the build command of setup.py on a working and a broken (``#error``) extension."""
    from torch.utils.cpp_extension import CppExtension
    (tmp_path / 'good.cpp').write_text(
        '#include <Python.h>\n'
        'static PyModuleDef def_ = {PyModuleDef_HEAD_INIT, "demo_good", nullptr, -1};\n'
        'PyMODINIT_FUNC PyInit_demo_good() { return PyModule_Create(&def_); }\n')
    (tmp_path / 'broken.cpp').write_text('#error deliberately broken kernel source\n')
    extensions = [
        CppExtension('demo_broken', [str(tmp_path / 'broken.cpp')], optional=broken_is_optional),
        CppExtension('demo_good', [str(tmp_path / 'good.cpp')]),
    ]
    dist = Distribution({
        'name': 'demo',
        'ext_modules': extensions,
        'cmdclass': {
            'build_ext': msda_build.optional_build_command()
        }
    })
    command = dist.get_command_obj('build_ext')
    command.build_lib, command.build_temp = str(tmp_path / 'lib'), str(tmp_path / 'temp')
    command.ensure_finalized()
    command.run()
    return command, sorted(os.listdir(tmp_path / 'lib'))


def test_a_failing_optional_kernel_build_warns_and_installs_without_it(tmp_path):
    with pytest.warns(UserWarning, match='building the optional extension demo_broken failed'):
        command, built = build_two_extensions(tmp_path, broken_is_optional=True)
    assert [name.split('.')[0] for name in built] == ['demo_good']
    assert [ext.name for ext in command.extensions] == ['demo_good']  # nothing copies it later


def test_a_failing_required_kernel_build_fails(tmp_path):
    with pytest.raises(RuntimeError, match='Error compiling objects for extension'):
        build_two_extensions(tmp_path, broken_is_optional=False)


def test_unknown_extension_kind():
    with pytest.raises(ValueError, match="unknown MSDA extension 'rocm'"):
        msda_build.load_msda_extension('rocm')


def run_kernels(kernels, value, shapes, locations, weights, grad_output):
    flat = [side for shape in shapes.tolist() for side in shape]
    out = kernels.msda_forward(value, flat, locations, weights)
    return [out] + list(kernels.msda_backward(grad_output, value, flat, locations, weights))


@pytest.mark.slow
def test_cpu_sources_jit_build(tmp_path):
    """The working tree's CPU sources compile with the JIT path and match the reference."""
    kernels = msda_build.load_msda_extension('cpu', build_directory=str(tmp_path))
    value, shapes, start, locations, weights = make_inputs([(5, 6), (2, 3)], dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (value, locations, weights)]
    expected = multi_scale_deformable_attn(leaves[0],
                                           shapes,
                                           start,
                                           leaves[1],
                                           leaves[2],
                                           backend='pytorch')
    grad_output = torch.randn_like(expected)
    expected.backward(grad_output)
    got = run_kernels(kernels, value, shapes, locations, weights, grad_output)
    for got_one, want in zip(got, [expected] + [leaf.grad for leaf in leaves]):
        torch.testing.assert_close(got_one, want)


# -- the CUDA sources (no GPU needed to compile) -------------------------------------------------

#: what CI compiles: the architectures of current GPUs from Turing (nvcc 13 has dropped sm < 75)
#: to Hopper, plus PTX for newer ones; sm_60 / sm_70 (still supported by the sources) are
#: covered by compiling the code they select (MSDA_EMULATE_BEFORE_SM60) for sm_90
CI_ARCHS = '7.5;8.0;8.6;8.9;9.0+PTX'
EXPECTED_GENCODES = {
    'arch=compute_75,code=sm_75', 'arch=compute_80,code=sm_80', 'arch=compute_86,code=sm_86',
    'arch=compute_89,code=sm_89', 'arch=compute_90,code=sm_90', 'arch=compute_90,code=compute_90'
}


def nvcc_ptx_command(cuda_home, arch, defines, output):
    """nvcc producing the PTX of msda_cuda.cu for ``arch``, with torch's flags."""
    torch_include = osp.join(osp.dirname(torch.__file__), 'include')
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    return ([
        osp.join(cuda_home, 'bin', 'nvcc'), f'-arch={arch}', '-ptx', '-std=c++17', '-isystem',
        torch_include, '-isystem',
        osp.join(torch_include, 'torch', 'csrc', 'api', 'include'), '-isystem',
        osp.join(cuda_home, 'include')
    ] + COMMON_NVCC_FLAGS + msda_build.NVCC_FLAGS + [f'-D{name}' for name in defines] +
            [osp.join(msda_build.CSRC, 'cuda', 'msda_cuda.cu'), '-o',
             str(output)])


@pytest.fixture(scope='module')
def cuda_build(tmp_path_factory):
    """The CUDA extension built for CI_ARCHS (about two minutes on 2 cores), and the PTX of the
    sm_90 code with and without the fallback macros (compiled at the same time)."""
    cuda_home = os.environ.get('CUDA_HOME', '/usr/local/cuda')
    if shutil.which('nvcc', path=osp.join(cuda_home, 'bin')) is None:
        pytest.skip(f'no nvcc under {cuda_home}/bin (set CUDA_HOME)')
    tmp = tmp_path_factory.mktemp('cuda_build')
    ptx = {'native': tmp / 'native.ptx', 'fallback': tmp / 'fallback.ptx'}
    compiles = [
        subprocess.Popen(nvcc_ptx_command(cuda_home, 'compute_90', (), ptx['native']),
                         stderr=subprocess.PIPE,
                         text=True),
        subprocess.Popen(nvcc_ptx_command(cuda_home, 'compute_90', msda_build.FALLBACK_MACROS,
                                          ptx['fallback']),
                         stderr=subprocess.PIPE,
                         text=True),
    ]
    import torch.utils.cpp_extension as cpp_extension
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('CUDA_HOME', cuda_home)
        patch.setattr(cpp_extension, 'CUDA_HOME', cuda_home)
        patch.setenv('TORCH_CUDA_ARCH_LIST', CI_ARCHS)
        kernels = msda_build.load_msda_extension('cuda',
                                                 build_directory=str(tmp / 'ext'),
                                                 extra_cuda_cflags=['--threads=2'])
    for process in compiles:
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors[-3000:]
    return types.SimpleNamespace(kernels=kernels,
                                 directory=tmp / 'ext',
                                 cuda_home=cuda_home,
                                 ptx={
                                     name: path.read_text()
                                     for name, path in ptx.items()
                                 })


def test_cuda_sources_build_for_the_ci_architectures(cuda_build):
    ninja = (cuda_build.directory / 'build.ninja').read_text()
    assert set(re.findall(r'-gencode=(arch=compute_\d+,code=\w+)', ninja)) == EXPECTED_GENCODES
    cuobjdump = shutil.which('cuobjdump', path=osp.join(cuda_build.cuda_home, 'bin'))
    if cuobjdump is not None:  # not every toolkit install has it
        listing = subprocess.run(
            [cuobjdump, '--list-elf', '--list-ptx', cuda_build.kernels.__file__],
            capture_output=True,
            text=True).stdout
        for arch in ('sm_75', 'sm_80', 'sm_86', 'sm_89', 'sm_90'):
            assert f'{arch}.cubin' in listing, listing
    with pytest.raises(RuntimeError, match='msda_cuda: tensors must be on a CUDA device'):
        value, shapes, _, locations, weights = make_inputs([(4, 5)])
        cuda_build.kernels.msda_forward(value, [4, 5], locations, weights)


def atomics(ptx):
    return set(re.findall(r'\b(?:atom|red)\.global\.[a-z0-9.]+', ptx))


def test_old_toolchain_and_old_gpu_branches_compile(cuda_build):
    """sm_90 with CUDA >= 12.1 uses 16-byte float atomics; the fallbacks (what CUDA < 12.1 or a
    GPU older than sm_60 would compile) use only scalar float atomics and a CAS loop for double."""
    native, fallback = atomics(cuda_build.ptx['native']), atomics(cuda_build.ptx['fallback'])
    assert 'atom.global.add.v4.f32' in native and 'atom.global.add.f64' in native
    assert {a for a in fallback if '.v2.' in a or '.v4.' in a} == set()
    assert 'atom.global.add.f64' not in fallback and 'atom.global.cas.b64' in fallback
    assert 'atom.global.add.f32' in fallback


BAD_INPUTS = {
    'empty level': lambda v, s, loc, w, g: (v[:, 6:], [0, 5, 2, 3], loc, w, g),
    'S mismatch': lambda v, s, loc, w, g: (v[:, :-1], s, loc, w, g),
    'S too large for the shapes': lambda v, s, loc, w, g: (v, [4, 4, 2, 3], loc, w, g),
    'levels': lambda v, s, loc, w, g: (v, s[:2], loc, w, g),
    'weights': lambda v, s, loc, w, g: (v, s, loc, w[..., :1], g),
    'integer value': lambda v, s, loc, w, g: (v.long(), s, loc, w, g),
    'grad_output shape': lambda v, s, loc, w, g: (v, s, loc, w, g[:, :-1]),
    'grad_output device': lambda v, s, loc, w, g: (v, s, loc, w, g.to('meta')),
}


@pytest.mark.parametrize('case', sorted(BAD_INPUTS))
def test_cuda_binding_checks_like_the_cpu_kernel(cuda_build, case):
    """Both bindings refuse bad input with the same message, before touching any device memory
    (so the CUDA one can be checked here, with CPU tensors)."""
    cpu_kernels = pytest.importorskip('mmvidt._ext_cpu')
    value, shapes, _, locations, weights = make_inputs([(4, 5), (2, 3)])
    grad_output = torch.randn(value.shape[0], locations.shape[1], value.shape[2] * value.shape[3])
    flat = [side for shape in shapes.tolist() for side in shape]
    args = BAD_INPUTS[case](value, flat, locations, weights, grad_output)
    messages = []
    for kernels in (cpu_kernels, cuda_build.kernels):
        with pytest.raises(RuntimeError) as error:
            kernels.msda_backward(args[4], *args[:4])
        messages.append(str(error.value).splitlines()[0])
    assert messages[0] == messages[1] and messages[0].startswith('msda: '), messages
