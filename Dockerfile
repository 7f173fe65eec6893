# syntax=docker/dockerfile:1
# QC Collector image. One image, several commands:
#   API (default):  gunicorn -c /app/config/gunicorn.conf.py   (uvicorn workers, PORT 8080)
#   migrations:     qc-collector migrate                       (once per release, owner URL)
#   go-live smoke:  qc-collector smoke --url URL               (API_KEY from the environment)
# Two stages: `build` creates the virtualenv (network, pip); `runtime` copies only the
# virtualenv and the source, runs as an unprivileged user and has no compiler, no pip
# cache and no package lists. Every dependency installs from a wheel, so even the build
# stage needs no compiler.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /app
# Dependencies first, exactly as locked (versions and sha256 of every file, `make lock`),
# so an image rebuilt later holds the same bytes and a source-only change reuses this
# layer. The embedded database (pgserver, the `embedded` extra) is not installed: the
# image always connects to DATABASE_URL.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY generated ./generated
COPY openapi ./openapi
COPY config ./config
# An editable install: the service reads openapi/ and config/ next to app/, so the code
# stays in /app and the virtualenv only points at it. Compile once here, since the
# runtime root filesystem is read-only.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --editable . \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -m compileall -q /app/app /app/generated

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" collector \
    && useradd --system --uid "${UID}" --gid collector --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin collector \
    && install -d -o collector -g collector -m 0750 /var/lib/qc-collector
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COLLECTOR_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    COLLECTOR_DATA_DIR=/var/lib/qc-collector \
    PROMETHEUS_MULTIPROC_DIR=/tmp/qcc-metrics
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Liveness of the process (Kubernetes uses its own probes: /health and /ready).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"]
CMD ["gunicorn", "-c", "/app/config/gunicorn.conf.py"]
