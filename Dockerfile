# The streamscore image: every command (worker, train, publish, ...) and `mlflow server`, with
# the dependencies pinned by constraints.txt. docker-compose.yml and deploy/k8s/ both run it.
FROM python:3.11-slim

# A fixed non-root uid, so that Kubernetes' runAsNonRoot can check it and volumes can be
# prepared for it.
ARG APP_UID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY streamscore ./streamscore
COPY stream ./stream
COPY producer ./producer
COPY trainer ./trainer
RUN pip install --no-cache-dir -c constraints.txt .
COPY config ./config
COPY data ./data

# /mlflow holds the MLflow server's SQLite store and artifacts in the Compose stack. A named
# volume mounted there starts with this directory's owner, so the server can write to it.
# /app/.streamscore is the default state_dir: the broker, the demo and a SQLite tracking store.
RUN useradd --uid "$APP_UID" --create-home --shell /usr/sbin/nologin streamscore \
    && mkdir -p /mlflow /app/.streamscore \
    && chown streamscore /mlflow /app/.streamscore
USER $APP_UID

ENV STREAMSCORE_CONFIG=/app/config/default.yaml \
    STREAMSCORE_METRICS__HOST=0.0.0.0
EXPOSE 9400
ENTRYPOINT ["streamscore"]
CMD ["worker"]
