# The image the Docker and Kubernetes work pools run (prefect.yaml's train-docker and train-kubernetes).
# PyTorch's CUDA wheels (requirements.lock: torch, cuda-toolkit) carry the CUDA runtime themselves, so a plain
# Python base is CUDA-capable: the host's NVIDIA Container Toolkit provides the driver. Build from the
# repository root: docker build -t handgesture .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    PREFECT_LOGGING_EXTRA_LOGGERS=handgesture

WORKDIR /opt/handgesture

# Dependencies first, in their own layer: a code change does not reinstall torch.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The package, editable: configs/ stays beside the code, where the library looks for configs/default.yaml.
COPY pyproject.toml README.md ./
COPY src ./src
COPY handgesture_cli ./handgesture_cli
COPY flows ./flows
COPY tasks ./tasks
COPY configs ./configs
RUN pip install --no-deps -e . && handgesture --help > /dev/null
