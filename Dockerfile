# threadline server image. Untested: this was written without access to a Docker daemon or registry.
# Build: docker build -t threadline .      Run: see compose.yaml and docs/deployment.md.

# --- stage 1: the local embedding model (torch and transformers stay in this stage) -------------------------------
FROM python:3.11-slim AS model
WORKDIR /build
COPY scripts/build-embedding-model.sh scripts/export_embedding_model.py scripts/
RUN THREADLINE_MODELS_DIR=/models THREADLINE_BUILD_VENV=/tmp/build-venv PYTHON=python3 \
    bash scripts/build-embedding-model.sh

# --- stage 2: the server ------------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first (cached while only the source changes); the lock pins every package, tracing's included.
COPY requirements/ requirements/
RUN pip install -r requirements/lock.txt

# code_interpreter: bubblewrap and a dedicated venv on Debian's python3.11 (requirements/sandbox.txt).
COPY scripts/setup-sandbox.sh scripts/
RUN sh scripts/setup-sandbox.sh && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-deps .

COPY --from=model /models /opt/threadline/models

ENV THREADLINE_MODELS_DIR=/opt/threadline/models \
    THREADLINE_HOST=0.0.0.0 \
    THREADLINE_PORT=8000 \
    THREADLINE_DATA_DIR=/var/lib/threadline \
    THREADLINE_LOG_FORMAT=json
VOLUME /var/lib/threadline
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"
# Runs as root: the sandbox gives each code_interpreter session its own unprivileged uid (docs/tools.md).
CMD ["threadline", "serve"]
