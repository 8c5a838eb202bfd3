# syntax=docker/dockerfile:1
# gotaskq image: `docker run gotaskq` serves the API and the workers; any other CLI verb
# can be given instead (`docker run gotaskq worker`, `... gotaskq queues --url ...`).

# --- build: install the project and its dependencies into a venv ---------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only what the wheel is built from: tests, deploy files and caches stay out of the image.
COPY pyproject.toml README.md LICENSE ./
COPY gotaskq ./gotaskq
COPY lua ./lua
RUN pip install .

# --- runtime: the venv alone, run by an unprivileged user ----------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gotaskq
COPY --from=build /opt/venv /opt/venv
USER gotaskq
WORKDIR /tmp
EXPOSE 8000
# Readiness, not liveness: `gotaskq health --ready` asks this container's own /readyz (it dials
# 127.0.0.1 when HOST is 0.0.0.0), which answers 503 while Redis cannot be reached, so an
# orchestrator sees "unhealthy" when the service cannot take jobs. No curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["gotaskq", "health", "--ready"]
# Exec form: gotaskq is PID 1 and gets SIGTERM itself, so it drains jobs for SHUTDOWN_GRACE.
ENTRYPOINT ["gotaskq"]
CMD ["serve"]
