# The worker image: SIAE Atlas with its locked dependencies, run as a non-root user, with the
# warehouse and the publications on the /data volume. It starts a Prefect process worker on
# the pool of prefect.yaml; give it PREFECT_API_URL (and the sources' tokens, AWS_* for the
# publication targets, SIAE_ALERT_WEBHOOK) at `docker run`. README, "Run it every day".
FROM python:3.11-slim

# uv from its official image, pinned (pyproject.toml needs uv >= 0.13.9)
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/

ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app
# the dependencies first (cached while only the code changes), exactly as uv.lock pins them
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY flows ./flows
COPY transforms ./transforms
COPY warehouse ./warehouse
COPY webmap ./webmap
COPY samples ./samples
COPY sources.toml prefect.yaml ./
RUN uv sync --locked --no-dev

RUN useradd --create-home --uid 10001 siae \
    && mkdir -p /data/warehouse /data/prefect \
    && chown -R siae:siae /data
USER siae

ENV PATH=/app/.venv/bin:$PATH \
    SIAE_ATLAS_DIR=/app \
    SIAE_HOME=/data/warehouse \
    SIAE_SOURCES=sources.toml \
    PREFECT_HOME=/data/prefect \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
VOLUME ["/data"]

CMD ["prefect", "worker", "start", "--pool", "siae-pool", "--type", "process"]
