#!/usr/bin/env bash
# Run the plain-Python test suite under other Pythons / rl_games versions (issue 8).
#
#   tools/matrix.sh                 # every cell below
#   tools/matrix.sh 3.12-1.6.5      # one cell: <python>-<rl_games>
#
# Each cell is a venv under .cache/matrix/py<python>-rlg<rl_games> made from pyenv's
# Python of that minor version (kept between runs: a second run only re-runs pytest).
# torch: `pip install torch==2.13.0`. On Python 3.11 that takes the CPU wheel this
# machine keeps in /opt/wheels; for 3.10 and 3.12 the only torch 2.13.0 wheels that pip
# can reach are PyPI's CUDA builds (~530 MB plus ~3 GB of nvidia-* wheels, shared through
# pip's cache). They import and run on a CPU-only machine. The PyTorch CPU index is used
# instead when it answers (MATRIX_TORCH_INDEX overrides it).
#
# rl_games 1.6.1 (the version Isaac Sim 2023.1 users have) declares Python < 3.11, so it
# is tested on 3.10 only; 1.6.5 on 3.10 and 3.12. The package's own differences between
# the two are in dofbot_rl/rl/rlg_compat.py.
#
# Output: one summary line per cell, and .cache/matrix/<cell>.log with pytest's output.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CELLS_DEFAULT="3.12-1.6.5 3.10-1.6.5 3.10-1.6.1"
CELLS="${*:-$CELLS_DEFAULT}"
TORCH_VERSION="${MATRIX_TORCH_VERSION:-2.13.0}"
TORCH_INDEX="${MATRIX_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
PYTEST_ARGS="${MATRIX_PYTEST_ARGS:--q}"  # pyproject adds -m "not slow and not kit"
mkdir -p "$ROOT/.cache/matrix"

pyenv_python() {
  local minor="$1" root
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  ls -d "$root"/versions/"$minor".*/bin/python 2>/dev/null | sort -V | tail -1
}

install_torch() {
  local py="$1"
  if "$py" -c "import torch" 2>/dev/null; then return 0; fi
  if curl -s -o /dev/null --max-time 10 "$TORCH_INDEX/torch/"; then
    "$py" -m pip install -q "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX" && return 0
  fi
  "$py" -m pip install -q "torch==$TORCH_VERSION"
}

status=0
for cell in $CELLS; do
  pyver="${cell%%-*}"; rlg="${cell#*-}"
  venv="$ROOT/.cache/matrix/py$pyver-rlg$rlg"
  log="$ROOT/.cache/matrix/py$pyver-rlg$rlg.log"
  base="$(pyenv_python "$pyver")"
  if [ -z "$base" ]; then
    echo "matrix: $cell skipped: no pyenv Python $pyver"; continue
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$base" -m venv "$venv" || { echo "matrix: $cell failed: venv"; status=1; continue; }
  fi
  py="$venv/bin/python"
  {
    # pyenv's 3.10 ships pip 23.0, whose resolver backtracked for over 30 minutes on this
    # project's requirements; a current pip resolves them in under a minute.
    "$py" -m pip install -q --upgrade pip &&
    install_torch "$py" &&
    if [ "$rlg" = "1.6.1" ]; then
      # rl_games 1.6.1's metadata (poetry) pins gym 0.23[classic_control], opencv-python and
      # wandb 0.12, which pip's resolver backtracks on for a quarter of an hour and which
      # training never imports: install rl_games without them, and what it does import.
      "$py" -m pip install -q --no-deps -e "$ROOT" "rl-games==1.6.1" &&
      "$py" -m pip install -q "gym==0.23.1" tensorboardX setproctitle "psutil<6" pyyaml "watchdog>=2.1.9,<3" \
        numpy mujoco hydra-core omegaconf tensorboard matplotlib tqdm pytest onnx onnxruntime
    else
      "$py" -m pip install -q -e "$ROOT[test]" "rl-games==$rlg"
    fi
  } >"$log.install" 2>&1 || { echo "matrix: $cell failed: install (see $log.install)"; status=1; continue; }
  versions="$("$py" -c 'import sys, torch, importlib.metadata as m; print("python", sys.version.split()[0], "torch", torch.__version__, "rl_games", m.version("rl-games"), "mujoco", m.version("mujoco"), "numpy", m.version("numpy"))')"
  (cd "$ROOT" && "$py" -m pytest $PYTEST_ARGS) >"$log" 2>&1
  rc=$?
  if [ "$pyver" = "3.10" ] && [ $rc -eq 0 ]; then
    # issue 18 item 20: play render=True on 3.10 (PyPI's CUDA torch build); the GIF test must run, not skip
    (cd "$ROOT" && "$py" -m pytest -q -rs tests/test_render.py -k gif) >>"$log" 2>&1
    grep -qE '^1 passed' <(tail -1 "$log") || { echo "matrix: $cell: render test did not pass (see $log)"; rc=1; }
  fi
  summary="$(grep -E '(passed|failed|error)' "$log" | tail -1)"
  echo "matrix: $cell rc=$rc [$versions] $summary"
  [ $rc -eq 0 ] || status=1
done
exit $status
