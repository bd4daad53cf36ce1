# The connector worker: a slim, non-root image of the wheel built from this tree.
#   docker build -t connector .
#   docker run -v $PWD/deploy/compose/deployment.yaml:/etc/connector/deployment.yaml:ro \
#              -p 8083:8083 connector
# Exit codes and the REST API: docs/OPERATIONS.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector ./connector
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin connector
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /tmp
EXPOSE 8083
# /health is Connect 3.9's: 200 only while no task is FAILED and Kafka is reachable.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8083/health', timeout=8)"]
ENTRYPOINT ["connector", "--log-format", "json"]
CMD ["run", "/etc/connector/deployment.yaml"]
