"""Install mmvidt, with its compiled multi-scale deformable attention kernels.

The CPU kernels are built by default (``MMVIDT_WITH_CPU=0`` skips them), the CUDA kernels with
``MMVIDT_WITH_CUDA=1`` or when a GPU is visible (``TORCH_CUDA_ARCH_LIST`` picks the
architectures); see mmvidt/ops/msda_build.py. A failed CUDA build only warns and installs without
it unless ``MMVIDT_WITH_CUDA=1`` demands it. mmvidt runs without the kernels, on the PyTorch
reference.
"""
import importlib.util
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open('mmvidt/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


def extension_kwargs() -> dict:
    """``ext_modules`` / ``cmdclass`` from mmvidt/ops/msda_build.py, loaded by path because the
    package itself is not importable yet; none when torch is missing (e.g. a metadata-only
    build)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return {}
    root = osp.dirname(osp.abspath(__file__))
    spec = importlib.util.spec_from_file_location('msda_build',
                                                  osp.join(root, 'mmvidt', 'ops', 'msda_build.py'))
    msda_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(msda_build)
    return msda_build.setup_extensions(root)


#: What OpenMMLab's mim reads from ``mmvidt/.mim`` (``mim search / train / test mmvidt``).
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def add_mim_extension() -> None:
    """Put the configs, tools and model index into ``mmvidt/.mim``, where mim looks for them.

    Editable installs (``develop`` / ``editable_wheel``) get relative symlinks, so edits show at
    once; wheels and sdists get copies. Only entries of ``mmvidt/.mim`` (made by this function,
    ignored by git) are replaced; other commands (egg_info, build_ext) change nothing.
    """
    if {'develop', 'editable_wheel'} & set(sys.argv):
        link = os.name != 'nt'  # no symlinks without privileges on Windows
    elif {'bdist_wheel', 'sdist', 'build', 'install'} & set(sys.argv):
        link = False
    else:
        return
    root = osp.dirname(osp.abspath(__file__))
    mim_dir = osp.join(root, 'mmvidt', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        source, target = osp.join(root, name), osp.join(mim_dir, name)
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        if link:
            os.symlink(osp.relpath(source, mim_dir), target)
        elif osp.isdir(source):
            shutil.copytree(source, target, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(source, target)


def read_requirements(path: str) -> list:
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith(('#', '-'))]


add_mim_extension()
setup(
    name='mmvidt',
    version=read_version(),
    description='ViDT / ViDT+ detectors and PiT / ReXNet backbones for OpenMMLab (mmdet 3.x)',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.10',
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt')},
    license='Apache-2.0',
    package_data={
        # the kernel sources travel with the package for the JIT path (mmvidt/ops/msda_build.py)
        'mmvidt.ops': ['csrc/*.h', 'csrc/*/*.cpp', 'csrc/*/*.cu'],
        'mmvidt': [
            '.mim/model-index.yml', '.mim/configs/**/*.py', '.mim/configs/**/*.yml',
            '.mim/configs/**/*.md', '.mim/tools/**/*.py', '.mim/tools/**/*.sh'
        ],
    },
    zip_safe=False,
    **extension_kwargs(),
)
