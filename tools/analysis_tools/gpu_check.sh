#!/usr/bin/env bash
# The GPU half of the MSDA checks: build the CUDA kernels in place, run the CUDA tests, benchmark
# the kernels against the PyTorch reference (and mmcv's CUDA op), and write logs and tables to
# $OUT. Prepared to run unattended on a bare GPU machine: Python 3.12, a CUDA build of torch,
# nvcc, ninja, no package registry, a copy of the working tree as the current directory.
#
#   OUT=/tmp/gpu_check bash tools/analysis_tools/gpu_check.sh                    # everything
#   OUT=... GPU_CHECK_STEPS="build test" bash tools/analysis_tools/gpu_check.sh  # a subset
#
# Steps (GPU_CHECK_STEPS, default "build test bench"):
#   build  setup.py build_ext --inplace with MMVIDT_WITH_CUDA=1 for the visible GPU, and beside
#          it the kernels compiled with the fallback macros (msda_build.FALLBACK_MACROS: the code
#          CUDA < 12.1 or a GPU older than sm_60 would get) and, when its sources are carried,
#          mmcv's MSDA kernel;
#   test   tests/test_ops/test_msda_cuda.py on both builds (forward, the three gradients, fp32 /
#          fp64 / fp16 / bf16, odd shapes, outside points, NaN, deterministic mode, no host
#          synchronisation, opcheck, compile / export), plus the op and trust-check tests;
#   bench  tools/analysis_tools/benchmark_msda.py on the GPU in float32, bfloat16 and float16.
# Build outputs stay in build/ (git-ignored), so "test" / "bench" can run in a later call on the
# same machine. Everything stops before GPU_CHECK_DEADLINE seconds (default 570: under a
# 10-minute limit per command), skipping what is left, so that the logs always come back; a full
# run should take 6-8 minutes on one H200 with 16 cores. $OUT/summary.txt lists each step, its
# status and seconds; the exit status is the number of failed or skipped steps.
#
# Python packages the machine lacks travel in the git-ignored folder .gpu_wheels/
# (GPU_CHECK_WHEELS=DIR to use another); fill it once where a registry is reachable:
#   python -m pip download --python-version 3.12 --only-binary=:all: --no-deps \
#     --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#     --platform manylinux2014_x86_64 -d .gpu_wheels -r tools/analysis_tools/gpu_check_wheels.txt
# and, optionally, mmcv's MSDA sources for the mmcv baseline (from an installed mmcv release):
#   tar czf .gpu_wheels/mmcv_csrc.tar.gz -C "$(python -c 'import mmcv, os;
#     print(os.path.dirname(mmcv.__file__))')/ops" csrc/common csrc/pytorch/cuda/ms_deform_attn_cuda.cu
# The wheels of distributions that are not installed already are unpacked into a private folder
# put on PYTHONPATH; nothing is installed into the machine's Python.
#
# GPU_CHECK_ARCH (e.g. 9.0) overrides the architecture built for, by default the visible GPU's;
# without a GPU it lets the build steps run (a dry run of the script on a CPU machine), where
# GPU_CHECK_TIME_SCALE (default 1) multiplies the time budget of each step.
# shellcheck disable=SC2329  # the step functions are run by name through run_step
set -uo pipefail

OUT=${OUT:?set OUT to the folder that receives the logs and tables}
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.gpu_wheels}
STEPS=${GPU_CHECK_STEPS:-build test bench}
DEADLINE=${GPU_CHECK_DEADLINE:-570}
SCALE=${GPU_CHECK_TIME_SCALE:-1}
WORK=${GPU_CHECK_WORK:-build/gpu_check}
JOBS=$(nproc)
START=$SECONDS
FAILED=0

mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
WORK=$(cd "$WORK" && pwd)
SITE="$WORK/site"
SUMMARY="$OUT/summary.txt"
mkdir -p "$SITE"
: >"$SUMMARY"
if [[ -z ${CUDA_HOME:-} && -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDA_HOME=/usr/local/cuda
fi
[[ -n ${CUDA_HOME:-} ]] && export PATH="$CUDA_HOME/bin:$PATH"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export MMVIDT_MSDA_FALLBACK_BUILD="$WORK/fallback" MMCV_CSRC="$WORK/mmcv/csrc"
export PY WORK WHEELS OUT SITE

note() { echo "$*" | tee -a "$SUMMARY"; }

wanted() { [[ " $STEPS " == *" $1 "* ]]; }

# run_step NAME BUDGET_SECONDS FUNCTION [ARGS]: run the (exported) function in a child bash
# under a timeout, log to $OUT/NAME.log, record the outcome in the summary
run_step() {
  local name=$1 budget=$(($2 * SCALE)) begin=$SECONDS status remaining
  shift 2
  remaining=$((DEADLINE - (SECONDS - START) - 10))
  if ((remaining < 30)); then
    note "$name: SKIPPED (deadline: $((SECONDS - START)) s used of $DEADLINE)"
    FAILED=$((FAILED + 1))
    return 1
  fi
  ((budget > remaining)) && budget=$remaining
  timeout --kill-after=10 "$budget" bash -c '"$@"' "$name" "$@" >"$OUT/$name.log" 2>&1
  status=$?
  if ((status == 0)); then
    note "$name: ok ($((SECONDS - begin)) s)"
    return 0
  fi
  ((status == 124)) && status="timed out after $budget s"
  note "$name: FAILED ($status; $((SECONDS - begin)) s; see $name.log)"
  tail -n 15 "$OUT/$name.log" | sed 's/^/    /' >>"$SUMMARY"
  FAILED=$((FAILED + 1))
  return 1
}

# -- the steps (exported for run_step) ------------------------------------------------------------

# with_ops CODE: run Python CODE with mmvidt.ops importable alone (mmvidt/__init__.py imports
# mmdet, mmpretrain and mmcv, which a bare GPU machine does not have and this check does not need)
with_ops() { "$PY" "$WORK/with_ops.py" -c "$1"; }

unpack_wheels() {
  if [[ ! -d $WHEELS ]]; then
    echo "no wheel folder $WHEELS: using the machine's packages only"
    return 0
  fi
  "$PY" - "$WHEELS" "$SITE" <<'PYTHON'
"""Unpack the wheels whose distribution is not installed in the machine's Python."""
import glob
import importlib.metadata
import os
import sys
import zipfile

wheels, site = sys.argv[1:3]
for wheel in sorted(glob.glob(os.path.join(wheels, '*.whl'))):
    name = os.path.basename(wheel).split('-')[0]
    try:
        print(f'{name}: {importlib.metadata.version(name)} already installed')
    except importlib.metadata.PackageNotFoundError:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        print(f'{name}: unpacked {os.path.basename(wheel)}')
PYTHON
}

build_inplace() { MMVIDT_WITH_CUDA=1 "$PY" setup.py build_ext --inplace; }

build_fallback() {
  with_ops "from mmvidt.ops import msda_build
kernels = msda_build.load_msda_extension('cuda', build_directory='$MMVIDT_MSDA_FALLBACK_BUILD',
                                         defines=msda_build.FALLBACK_MACROS, verbose=True)
print(kernels.__file__)"
}

build_mmcv() {
  mkdir -p "$WORK/mmcv" && tar xzf "$WHEELS/mmcv_csrc.tar.gz" -C "$WORK/mmcv" || return 1
  with_ops "import runpy
tool = runpy.run_path('tools/analysis_tools/benchmark_msda.py')
print(tool['load_mmcv_msda']('$MMCV_CSRC', '$WORK/mmcv_build').__file__)"
}

backend_info() {
  with_ops "import json
from mmvidt.ops import msda_backend_info
print(json.dumps(msda_backend_info(), indent=2))"
}

run_tests() {
  # the fallback variant only when its build succeeded (else the tests would rebuild it)
  compgen -G "$MMVIDT_MSDA_FALLBACK_BUILD/*.so" >/dev/null || unset MMVIDT_MSDA_FALLBACK_BUILD
  "$PY" "$WORK/with_ops.py" -m pytest --noconftest -q -rfEs -o cache_dir="$WORK/pytest_cache" \
    --durations=15 --junitxml="$OUT/junit.xml" tests/test_ops/test_msda_cuda.py \
    tests/test_ops/test_msda_op.py tests/test_ops/test_msda_trust.py
}

bench() {
  local dtype=$1 mmcv=()
  shift
  [[ -d $MMCV_CSRC ]] && mmcv=(--mmcv-csrc "$MMCV_CSRC" --build-dir "$WORK/mmcv_build")
  "$PY" "$WORK/with_ops.py" tools/analysis_tools/benchmark_msda.py --device cuda \
    --dtype "$dtype" "${mmcv[@]}" "$@"
}

export -f with_ops unpack_wheels build_inplace build_fallback build_mmcv backend_info run_tests \
  bench

cat >"$WORK/with_ops.py" <<'PYTHON'
"""``with_ops.py SCRIPT ARGS`` / ``-m MODULE ARGS`` / ``-c CODE``, with ``mmvidt`` importable as
a bare package whose ``__init__`` is not run (so ``mmvidt.ops`` imports on torch and mmengine)."""
import os
import runpy
import sys
import types

package = types.ModuleType('mmvidt')
package.__path__ = [os.path.join(os.getcwd(), 'mmvidt')]
sys.modules['mmvidt'] = package
# an installed (editable) mmvidt would answer for mmvidt.* before the path above: drop its finder
sys.meta_path = [finder for finder in sys.meta_path
                 if not type(finder).__module__.startswith('__editable__')]
if sys.argv[1] == '-m':
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
elif sys.argv[1] == '-c':
    code, sys.argv = sys.argv[2], ['-c'] + sys.argv[3:]
    exec(compile(code, '<with_ops -c>', 'exec'), {'__name__': '__main__'})
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name='__main__')
PYTHON

# -- run ------------------------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cwd: $PWD ($(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  "$PY" --version 2>&1
  nvcc --version 2>&1 | tail -n 2
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
                              "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())'
  echo "cores: $JOBS; steps: $STEPS; deadline: $DEADLINE s"
} >"$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

run_step wheels 60 unpack_wheels
ARCH=${GPU_CHECK_ARCH:-$("$PY" -c 'import torch
print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null)}
if [[ -z $ARCH ]]; then
  note "no CUDA device visible to torch (and no GPU_CHECK_ARCH): nothing to check"
  exit 1
fi
export TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=$JOBS

if wanted build; then
  # three builds at once: ours (required), the fallback variant and mmcv's kernel (optional)
  run_step build_fallback 300 build_fallback &
  background=($!)
  if [[ -f $WHEELS/mmcv_csrc.tar.gz ]]; then
    run_step build_mmcv 300 build_mmcv &
    background+=($!)
  fi
  run_step build 300 build_inplace
  for pid in "${background[@]}"; do
    wait "$pid" || FAILED=$((FAILED + 1))  # (their own FAILED counts died with the subshell)
  done
  run_step backend_info 60 backend_info && cp "$OUT/backend_info.log" "$OUT/backend_info.json"
fi
wanted test && run_step test 240 run_tests
if wanted bench; then
  run_step bench_float32 120 bench float32
  run_step bench_bfloat16 90 bench bfloat16
  run_step bench_float16 60 bench float16 --quick
fi

note "total: $((SECONDS - START)) s, $FAILED failed or skipped step(s)"
exit "$FAILED"
