# syntax=docker/dockerfile:1
# The hvlab worker image (also runs `hvlab codec-server` and the rest of the CLI).
#
#   docker build -t hvlab:0.1.0 .
#   docker run --rm -e HVLAB_TEMPORAL_ADDRESS=temporal:7233 hvlab:0.1.0          # the worker
#   docker run --rm hvlab:0.1.0 codec-server                                       # the codec server
#
# Only the runtime dependencies are installed: pip installs the project itself, so the list is
# exactly `[project] dependencies` of pyproject.toml (the dev extra is never installed here;
# tests/deploy/test_deploy_files.py checks both). Python 3.11 is the interpreter hvlab is tested
# with (`requires-python = ">=3.11"`).
#
# Build argument HVLAB_EXTRAS="kerberos" adds the optional Kerberos support (pyspnego[kerberos]:
# python-gssapi and pykrb5, which link against MIT Kerberos) for real Windows hosts.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ARG HVLAB_EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Kerberos bindings may need headers and a compiler when no wheel fits the platform.
RUN if [ -n "$HVLAB_EXTRAS" ]; then \
        export DEBIAN_FRONTEND=noninteractive && apt-get update \
        && apt-get install -y --no-install-recommends gcc libc6-dev libkrb5-dev \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/hvlab
WORKDIR /src
# What setuptools needs to build the distribution: metadata, readme, packages, worker module.
COPY pyproject.toml README.md worker.py ./
COPY hvlab ./hvlab
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY simulator ./simulator
# A regular (non-editable) install of the project; its dependencies come from pyproject.toml.
RUN if [ -n "$HVLAB_EXTRAS" ]; then target=".[$HVLAB_EXTRAS]"; else target="."; fi \
    && /opt/hvlab/bin/pip install "$target" \
    && /opt/hvlab/bin/hvlab --help > /dev/null

# --------------------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime
ARG HVLAB_EXTRAS=""
LABEL org.opencontainers.image.title="hvlab" \
      org.opencontainers.image.description="hvlab Temporal worker for Hyper-V labs over WinRM" \
      org.opencontainers.image.licenses="Apache-2.0"
# Kerberos runtime libraries only when the Kerberos extra was built in.
RUN if [ -n "$HVLAB_EXTRAS" ]; then \
        export DEBIAN_FRONTEND=noninteractive && apt-get update \
        && apt-get install -y --no-install-recommends libgssapi-krb5-2 libkrb5-3 krb5-user \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 hvlab \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hvlab --no-create-home \
       --shell /usr/sbin/nologin hvlab \
    && mkdir -p /var/lib/hvlab/labs \
    && chown -R 10001:10001 /var/lib/hvlab
COPY --from=build /opt/hvlab /opt/hvlab
ENV PATH="/opt/hvlab/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HVLAB_HOME=/var/lib/hvlab \
    HVLAB_METRICS_ADDRESS=0.0.0.0:9464 \
    HVLAB_LOG_FORMAT=json
WORKDIR /var/lib/hvlab
USER 10001:10001
# 9464: worker /metrics and /healthz; 8888: `hvlab codec-server` (HVLAB_CODEC_SERVER_ADDRESS).
EXPOSE 9464 8888
# SIGTERM drains the worker (running activities get HVLAB_GRACEFUL_SHUTDOWN_SECONDS).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hvlab"]
CMD ["worker"]
