"""How the compiled MSDA kernels are built: ahead of time by ``setup.py``, or just in time.

This module depends on torch and the standard library only: ``setup.py`` loads it by file path
before mmvidt is importable.

* ``setup.py`` calls :func:`setup_extensions` (CPU kernel by default; CUDA kernel with
  ``MMVIDT_WITH_CUDA=1`` or when a GPU is visible; ``MMVIDT_WITH_CPU=0`` skips the CPU one).
  The CUDA kernel is optional unless ``MMVIDT_WITH_CUDA=1`` demands it: when its build fails
  (an unsupported CUDA toolkit, a compiler mismatch, ...) the install warns and goes on without
  it, and mmvidt runs MSDA on GPUs with the PyTorch reference.
* Development: :func:`load_msda_extension` compiles the sources of the working tree with
  ``torch.utils.cpp_extension.load`` (``MMVIDT_JIT=1`` makes ``import mmvidt`` do so when the
  prebuilt extension is missing).
"""
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

CSRC = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc')
#: device type -> module name of the prebuilt extension
EXTENSION_MODULES = {'cpu': 'mmvidt._ext_cpu', 'cuda': 'mmvidt._ext_cuda'}
#: device type -> sources, relative to ``csrc``
SOURCES = {
    'cpu': ['cpu/msda_cpu.cpp'],
    'cuda': ['cuda/msda_cuda_bind.cpp', 'cuda/msda_cuda.cu'],
}
# OpenMP: at::parallel_for is an inline `#pragma omp parallel` in the headers, so the extension
# itself must be compiled with it (it then shares torch's libgomp at run time).
CXX_FLAGS = {'cpu': ['-O3', '-fopenmp'], 'cuda': ['-O3']}
LINK_FLAGS = {'cpu': ['-fopenmp'], 'cuda': []}
NVCC_FLAGS = ['-O3', '-lineinfo']


def _env_flag(name: str) -> Optional[bool]:
    value = os.environ.get(name)
    return None if value is None else value.strip().lower() not in ('0', 'false', 'no', '')


def wanted_extensions() -> List[str]:
    """Device types whose kernels ``setup.py`` builds (see the module docstring)."""
    import torch
    kinds = [] if _env_flag('MMVIDT_WITH_CPU') is False else ['cpu']
    with_cuda = _env_flag('MMVIDT_WITH_CUDA')
    if with_cuda or (with_cuda is None and torch.cuda.is_available()):
        kinds.append('cuda')
    return kinds


def optional_build_command():
    """torch's ``BuildExtension``, except that an extension marked ``optional`` whose build
    fails is left out with a warning instead of failing the whole build.

    (setuptools' own ``optional`` only catches distutils' compiler errors, not the
    ``RuntimeError`` of torch's ninja build, and would then still try to copy the missing file.)
    """
    from torch.utils.cpp_extension import BuildExtension

    class OptionalBuildExtension(BuildExtension):

        def build_extensions(self) -> None:
            self.failed_optional: List[str] = []
            super().build_extensions()
            # leave the failed ones out of what is copied / installed / recorded afterwards
            self.extensions[:] = [
                ext for ext in self.extensions if ext.name not in self.failed_optional
            ]

        def build_extension(self, ext) -> None:
            if not getattr(ext, 'optional', False):
                super().build_extension(ext)
                return
            try:
                super().build_extension(ext)
            except Exception as err:  # noqa: BLE001  (any failure of an optional build)
                self.failed_optional.append(ext.name)
                first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
                warnings.warn(
                    f'mmvidt: building the optional extension {ext.name} failed ({first_line}); '
                    'installing without it (MSDA then runs on the PyTorch reference on that '
                    'device). Set MMVIDT_WITH_CUDA=1 to make this an error.',
                    stacklevel=1)

    return OptionalBuildExtension


def setup_extensions(root: str) -> Dict[str, object]:
    """``ext_modules`` / ``cmdclass`` keyword arguments for ``setup()``, with sources relative
    to the project ``root`` (setuptools rejects absolute ones)."""
    from torch.utils.cpp_extension import CppExtension, CUDAExtension
    modules = []
    for kind in wanted_extensions():
        sources = [osp.relpath(osp.join(CSRC, src), root) for src in SOURCES[kind]]
        if kind == 'cuda':
            modules.append(
                CUDAExtension(EXTENSION_MODULES[kind], sources,
                              extra_compile_args={'cxx': CXX_FLAGS[kind], 'nvcc': NVCC_FLAGS},
                              extra_link_args=LINK_FLAGS[kind],
                              optional=not _env_flag('MMVIDT_WITH_CUDA')))
        else:
            modules.append(
                CppExtension(EXTENSION_MODULES[kind], sources,
                             extra_compile_args={'cxx': CXX_FLAGS[kind]},
                             extra_link_args=LINK_FLAGS[kind]))
    return {'ext_modules': modules, 'cmdclass': {'build_ext': optional_build_command()}}


#: macros of msda_cuda.cu that force the code paths of older toolchains / GPUs on any setup
FALLBACK_MACROS = ('MSDA_EMULATE_CUDA_BEFORE_12_1', 'MSDA_EMULATE_BEFORE_SM60')


def load_msda_extension(kind: str,
                        build_directory: Optional[str] = None,
                        verbose: bool = False,
                        defines: Sequence[str] = (),
                        extra_cuda_cflags: Sequence[str] = ()):
    """Compile (or reuse a cached build of) the ``kind`` ('cpu' or 'cuda') kernels and import them.

    Builds into ``build_directory`` (default: torch's extension cache) under a name distinct from
    the prebuilt module, so both can be loaded side by side. CUDA needs ``CUDA_HOME`` and, without
    a GPU, ``TORCH_CUDA_ARCH_LIST``; no GPU is needed to compile. ``defines`` (e.g.
    :data:`FALLBACK_MACROS`) are passed as ``-D`` and make a module of their own name;
    ``extra_cuda_cflags`` go to nvcc (e.g. ``--threads=2`` to compile architectures in parallel).
    """
    if kind not in SOURCES:
        raise ValueError(f'unknown MSDA extension {kind!r}; expected one of {sorted(SOURCES)}')
    from torch.utils.cpp_extension import load
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)
    macros = [f'-D{name}' for name in defines]
    suffix = ''.join(f'_{name.lower()}' for name in defines)
    cuda_flags = NVCC_FLAGS + macros + list(extra_cuda_cflags) if kind == 'cuda' else None
    return load(name=f'mmvidt_msda_{kind}_jit{suffix}',
                sources=[osp.join(CSRC, src) for src in SOURCES[kind]],
                extra_cflags=CXX_FLAGS[kind] + macros, extra_cuda_cflags=cuda_flags,
                extra_ldflags=LINK_FLAGS[kind], build_directory=build_directory, verbose=verbose)
