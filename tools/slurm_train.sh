#!/usr/bin/env bash
# Train on a SLURM cluster, one task per GPU (srun starts them; mmengine reads SLURM_* for ranks):
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR \
#       [train.py args]
# GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (extra srun options) and
# PYTHON (python) can be set. The master port defaults to 29500 (PORT).
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python}

# shellcheck disable=SC2086  # SRUN_ARGS holds several options
PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" MASTER_PORT=${PORT:-29500} \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$(dirname "$0")/train.py" "$CONFIG" --work-dir "$WORK_DIR" \
    --launcher slurm "${@:5}"
