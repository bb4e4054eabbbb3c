#!/usr/bin/env bash
# Create (or update) a virtual environment with the pinned OpenMMLab stack and mmvidt.
#
#   bash tools/install.sh            # venv in ./.venv
#   MMVIDT_VENV=/path bash tools/install.sh
#
# Idempotent: a stamp keyed by the requirement files and this script makes a repeated run
# return in seconds. mmcv 2.1.0 is built from source (no wheel exists for this torch) and the
# built wheel is cached outside the checkout, keyed by mmcv, torch (incl. its CUDA tag), Python
# and machine, so a cache made against another torch is never reused.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MMVIDT_VENV:-$root/.venv}
python=${PYTHON:-python3}
cache=${MMVIDT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmvidt}

die() { echo "install.sh: error: $*" >&2; exit 1; }
log() { echo "install.sh: $*"; }

# The compiled MSDA kernels are part of the editable install: a change of their sources must
# rebuild them, or a stale extension would keep running.
stamp_inputs=("$root"/requirements/*.txt "$root/tools/install.sh" "$root/setup.py"
              $(find "$root/mmvidt/ops/csrc" "$root/mmvidt/ops/msda_build.py" -type f | sort))
stamp_value=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.mmvidt-install-stamp

if [[ -f $stamp_file && $(cat "$stamp_file") == "$stamp_value" ]] \
    && "$venv/bin/python" -c "import mmcv._ext, mmvidt" 2>/dev/null; then
  log "environment $venv is up to date"
  exit 0
fi

if [[ ! -x $venv/bin/python ]]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv" || die "could not create a virtual environment with $python"
fi
py=$venv/bin/python
pip=("$py" -m pip install -q --disable-pip-version-check)

log "installing build requirements (torch, setuptools, ...)"
"${pip[@]}" --upgrade pip >/dev/null
"${pip[@]}" -r "$root/requirements/build.txt"

# The cache key must change whenever the compiled ops would: torch version (with its +cuXXX
# tag), whether CUDA ops are built (a visible GPU or FORCE_CUDA=1), Python ABI and machine.
mmcv_version=$(sed -n 's/^mmcv==//p' "$root/requirements/mminstall.txt")
key=$("$py" - "$mmcv_version" <<'PY'
import os, platform, sys, torch
cuda = torch.cuda.is_available() or os.environ.get('FORCE_CUDA', '0') == '1'
print(f"mmcv{sys.argv[1]}-torch{torch.__version__}-"
      f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}-"
      f"{'cuda' if cuda else 'cpuops'}")
PY
)
wheel_dir=$cache/wheels/$key
if ! compgen -G "$wheel_dir/mmcv-*.whl" >/dev/null; then
  log "building mmcv $mmcv_version from source for $key (about 15 minutes on 2 cores)"
  tmp=$(mktemp -d)
  # --no-build-isolation: mmcv's setup.py must see torch, or it silently skips the ops.
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "$py" -m pip wheel --no-deps --no-build-isolation --no-cache-dir \
    -w "$tmp" "mmcv==$mmcv_version" || die "building mmcv $mmcv_version failed"
  mkdir -p "$wheel_dir"
  mv "$tmp"/mmcv-*.whl "$wheel_dir/"
  rm -rf "$tmp"
else
  log "using cached mmcv wheel $wheel_dir"
fi
"${pip[@]}" "$wheel_dir"/mmcv-*.whl
"$py" -c "import mmcv._ext" 2>/dev/null \
  || die "mmcv is installed without its compiled ops (mmcv._ext missing); remove $wheel_dir and rerun"

log "installing OpenMMLab packages and runtime/test/tool requirements"
"${pip[@]}" -r "$root/requirements/mminstall.txt" -r "$root/requirements/runtime.txt" \
  -r "$root/requirements/tests.txt" -r "$root/requirements/tools.txt"
"${pip[@]}" --no-deps -r "$root/requirements/mim.txt"

log "installing mmvidt (editable)"
"${pip[@]}" --no-build-isolation --no-deps -e "$root"

"$py" -c "import mmvidt, mmcv.ops, mmdet.models, mmpretrain.models" \
  || die "the environment does not import mmvidt / mmcv.ops / mmdet.models / mmpretrain.models"
echo "$stamp_value" >"$stamp_file"
log "done: $("$py" -c 'import mmvidt, mmcv, mmdet, torch; print(f"mmvidt {mmvidt.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, torch {torch.__version__}")')"
