#!/usr/bin/env bash
# Build the wheel kit that dofbot-rl needs on the lent GPU machines (`device` tool): Python 3.12 with
# torch, numpy, tensorboard, matplotlib, tqdm, absl-py, etils ... already there, no network, and at
# most 64 MiB carried per call. Writes .gpu_gpu/ (git-excluded):
#
#   warp.part.00 .. warp.part.02   warp-lang's 149 MB wheel in pieces (carry one per call, copy to /tmp)
#   kit/                           every other wheel the image lacks (dofbot-rl itself runs from the
#                                  carried working tree: PYTHONPATH=$PWD/exts/dofbot.rl_examples)
#   setup.sh                       on the device: join the pieces, install the kit into /tmp/site_kit
#
# Versions are this checkout's venv's (pip freeze), so the device runs what the tests ran; warp-lang
# and mujoco-warp default to the versions of docs/benchmarks.md where the venv lacks them.
#   tools/device_kit.sh            then, on the device, three back-to-back calls (warm for 30 s only):
#   1. carry [.gpu_gpu/warp.part.00]: cp .gpu_gpu/warp.part.00 /tmp/
#   2. carry [.gpu_gpu/warp.part.01]: cp .gpu_gpu/warp.part.01 /tmp/
#   3. carry [.gpu_gpu/warp.part.02, .gpu_gpu/kit, .gpu_gpu/setup.sh]:
#      bash .gpu_gpu/setup.sh && export PYTHONPATH=/tmp/site_kit:$PWD/exts/dofbot.rl_examples PYTHONUNBUFFERED=1 \
#        PYTHONPYCACHEPREFIX=/tmp/pyc; unset PYTHONDONTWRITEBYTECODE; python3 benchmarks/startup.py $OUT ...
# (PYTHONPYCACHEPREFIX + PYTHONDONTWRITEBYTECODE unset: bytecode caches as on a user's machine,
# see docs/benchmarks.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
K=.gpu_gpu
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# NAME==VERSION as installed here, else $2 (the [gpu] extra is not in a CPU venv: the versions measured).
ver() { local v; v=$(python3 -m pip freeze 2>/dev/null | grep -i "^$1==" | head -1); echo "${v:-${2:?$1 is not installed here}}"; }
rm -rf "$K" && mkdir -p "$K/kit" "$K/warp"
grep -qx "/$K/" .git/info/exclude 2>/dev/null || echo "/$K/" >> .git/info/exclude
# Wheels with compiled code: for the device's Python and platform, as published.
python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$K/kit" \
  "$(ver mujoco-core)" "$(ver mujoco-studio)" "$(ver glfw)" "$(ver setproctitle)" "$(ver watchdog)" "$(ver websockets)"
python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$K/warp" "$(ver warp-lang warp-lang==1.19.0)"
# Pure-Python ones (some published only as sources, e.g. antlr4-python3-runtime 4.9.3): built here.
python3 -m pip wheel -q --no-deps -w "$K/kit" "$(ver mujoco)" "$(ver mujoco-warp mujoco-warp==4.0.0)" "$(ver rl-games)" "$(ver hydra-core)" \
  "$(ver omegaconf)" "$(ver antlr4-python3-runtime)" "$(ver gymnasium)" "$(ver farama-notifications)" \
  "$(ver pyopengl)" "$(ver tensorboardx)"
warp_whl=$(ls "$K"/warp/*.whl)
split -b 60M -d "$warp_whl" "$K/warp.part."
echo "$(basename "$warp_whl")" > "$K/kit/WARP_WHEEL_NAME"
rm -rf "$K/warp"
cat > "$K/setup.sh" <<'EOF'
#!/usr/bin/env bash
# On the device: join warp's pieces (copied to /tmp by the calls before) and install the kit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=$(cat "$here/kit/WARP_WHEEL_NAME")
cp "$here"/warp.part.* /tmp/ 2>/dev/null || true
cat /tmp/warp.part.* > "/tmp/$name"
python3 -m pip install -q --no-index --no-deps --target /tmp/site_kit "/tmp/$name" "$here"/kit/*.whl
python3 -c "import sys; sys.path[:0] = ['/tmp/site_kit']; import warp, mujoco, mujoco_warp, rl_games; print('kit ok: warp', warp.__version__, 'mujoco', mujoco.__version__)"
EOF
chmod +x "$K/setup.sh"
du -sh "$K"/* | sed 's/^/  /'
