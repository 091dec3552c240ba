# coo-llm: one image for both process types of the Procfile.
#   web:    docker run -p 2906:2906 -e COO_CONFIG=/app/configs/redis.yaml -e COO_CLIENT_KEY=... coo-llm
#   worker: docker run -e COO_CONFIG=/app/configs/redis.yaml coo-llm coo-llm worker --metrics-host 0.0.0.0 --metrics-port 9100
# The web process listens on 0.0.0.0, so the default config (configs/config.yaml: no client keys)
# refuses to start open there unless -e COO_ALLOW_OPEN_ACCESS=true says so.
# Build stage: turn the source into a wheel, so the runtime image carries no build tools.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY app ./app
COPY balancer ./balancer
COPY adapters ./adapters
COPY storage ./storage
COPY workers ./workers
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COO_CONFIG=/app/configs/config.yaml \
    PORT=2906 \
    WEB_CONCURRENCY=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin coo
WORKDIR /app
COPY --chown=coo:coo configs ./configs
USER coo
EXPOSE 2906
# Liveness of the web process on $PORT (compose gives the worker its own check).
HEALTHCHECK --interval=15s --timeout=3s --start-period=15s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '2906'), timeout=2)"
# The Procfile's web line: `sh -c` so $PORT and $WEB_CONCURRENCY expand, `exec` so signals reach coo-llm.
CMD ["sh", "-c", "exec coo-llm serve --host 0.0.0.0 --port ${PORT:-2906} --workers ${WEB_CONCURRENCY:-1}"]
