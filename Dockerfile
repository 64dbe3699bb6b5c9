# Every lookalike image, one target per service (docker-compose.yml picks them with `build.target`):
#
#   gateway   `lookalike serve`; docker-compose.yml also runs its one-shots on it (`lookalike migrate`,
#             `lookalike models verify`)
#   worker    `lookalike worker`: Celery on the queue "diagnose" (detection and embedding)
#   ingest    `lookalike ingest-worker`: Celery on the queue "ingest" (scrape, upload, re-index)
#
# Build context: the repository root (`docker compose build`, or `docker build --target worker .`). The targets
# share every layer of `base`, built once; each adds only its health check and command.
#
# ORT_PACKAGE picks the ONNX Runtime wheel. The default is the CPU runtime that pyproject.toml depends on;
# docker-compose.gpu.yml sets onnxruntime-gpu for the worker target only, which replaces it (the two wheels share
# the `onnxruntime` import package, so they are never installed together). A GPU worker parts ways with the other
# images at that step; the layers before it stay shared.

# bookworm pins the Debian release, so the apt package names below stay valid.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOOKALIKE_DATA_DIR=/data \
    LOOKALIKE_MODEL_ROOT=/home/app/.insightface

# opencv-python (not the headless build) links against libGL, GLib and a few X11 libraries.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libsm6 libxext6 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, in their own layer: source and README edits do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Swap the ONNX Runtime wheel when asked, before the source so that a source edit does not download it again.
# onnxruntime-gpu comes with its CUDA and cuDNN wheels (extras cuda,cudnn); their libraries are registered with the
# dynamic loader because nothing else puts them on its search path.
ARG ORT_PACKAGE=onnxruntime
RUN set -eu; \
    if [ "$ORT_PACKAGE" != "onnxruntime" ]; then \
        pip uninstall -y onnxruntime; \
        case "$ORT_PACKAGE" in \
            onnxruntime-gpu*) pip install "$ORT_PACKAGE" "onnxruntime-gpu[cuda,cudnn]" ;; \
            *) pip install "$ORT_PACKAGE" ;; \
        esac; \
        nvidia="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia"; \
        if [ -d "$nvidia" ]; then \
            find "$nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u > /etc/ld.so.conf.d/nvidia-wheels.conf; \
            ldconfig; \
        fi; \
    fi; \
    python -c "import importlib.metadata as md; \
ort = sorted({d.metadata['Name'].lower().replace('_', '-') for d in md.distributions()} & {'onnxruntime', 'onnxruntime-gpu'}); \
assert len(ort) == 1, f'exactly one ONNX Runtime wheel must be installed, found {ort}'; print('ONNX Runtime:', *ort)"

# The tree the code expects at run time: lookalike.db.migrate finds alembic.ini and migrations/ (and the CLI finds
# demo/) relative to the source, so the package is installed in editable mode from /app, not copied into
# site-packages.
COPY README.md alembic.ini ./
COPY migrations/ migrations/
COPY demo/ demo/
COPY shared/ shared/
COPY services/ services/
RUN pip install --no-deps -e . \
    && python -c "from lookalike.db.migrate import ROOT; assert (ROOT / 'alembic.ini').is_file(), ROOT"

RUN useradd --create-home --uid 1000 --user-group app \
    && mkdir -p /data /home/app/.insightface \
    && chown -R app:app /data /home/app/.insightface
USER app


FROM base AS gateway

EXPOSE 8000

# No curl in the slim image. The models load before the server accepts connections (and buffalo_l downloads on
# first use), hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["lookalike", "serve", "--host", "0.0.0.0", "--port", "8000"]


FROM base AS worker

# Alive = the Celery worker answers a ping through the broker (its node name is diagnose@<hostname>, see
# `lookalike worker`). The models load on the first job, not before, so a short start period is enough.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD celery -A services.worker.tasks inspect ping --destination "diagnose@$(hostname)" --timeout 10 > /dev/null

CMD ["lookalike", "worker"]


FROM base AS ingest

# Alive = the Celery worker answers a ping through the broker (its node name is ingest@<hostname>, see
# `lookalike ingest-worker`).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD celery -A services.ingest.tasks inspect ping --destination "ingest@$(hostname)" --timeout 10 > /dev/null

CMD ["lookalike", "ingest-worker"]
