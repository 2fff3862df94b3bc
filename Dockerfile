# dofbot-rl: headless training and evaluation image (docker or podman). See docs/containers.md.
#
#   docker build -t dofbot-rl .
#   mkdir -p runs && docker run --rm --gpus all --user "$(id -u):$(id -g)" \
#       -v "$PWD/runs:/workspace/runs" -v dofbot-rl-cache:/cache dofbot-rl train num_envs=8192
#
# BASE: any image with Python >= 3.10 and its venv module. The default is PyTorch's CUDA
# runtime image, whose torch is used as it is; a base without torch gets TORCH_SPEC.
ARG BASE=docker.io/pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime
FROM ${BASE}

# torch to install when the base has none, and an extra index to take it from. PyPI's
# torch==2.13.0 is the CUDA build (~4 GB of wheels); a CPU-only image takes
# TORCH_INDEX=https://download.pytorch.org/whl/cpu (docs/containers.md, "Size, and how to slim it").
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""

# Any user id can run the image (docker run --user "$(id -u):$(id -g)"): HOME is /tmp,
# every cache (warp kernels, matplotlib) lives under the /cache volume.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/cache \
    WARP_CACHE_PATH=/cache/warp \
    MPLCONFIGDIR=/cache/matplotlib \
    PATH=/opt/venv/bin:$PATH

# A venv that sees the base's packages (its torch) and leaves the base's Python untouched.
RUN python3 -m venv --system-site-packages /opt/venv \
 && if python -c "import torch" 2>/dev/null; then \
        python -c "import torch; print('dofbot-rl image: torch', torch.__version__, 'from the base image')"; \
    else \
        pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH_SPEC"; \
    fi

# The project (config/ and data/ are read from this folder at run time) and its extras:
# gpu = MuJoCo Warp + warp-lang (sim_device=cuda:N), export = onnx + onnxruntime
# (dofbot-rl export format=onnx); "export" alone for a CPU-only image.
ARG EXTRAS=gpu,export
COPY pyproject.toml README.md /opt/dofbot-rl/
COPY config /opt/dofbot-rl/config
COPY data /opt/dofbot-rl/data
COPY exts /opt/dofbot-rl/exts
RUN pip install -e "/opt/dofbot-rl${EXTRAS:+[$EXTRAS]}" \
 && mkdir -p /workspace /cache \
 && chmod 1777 /workspace /cache

VOLUME ["/cache"]
WORKDIR /workspace
ENTRYPOINT ["dofbot-rl"]
CMD ["--help"]
