# The streamscore image: every command (worker, train, publish, ...) with pinned dependencies.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY streamscore ./streamscore
COPY stream ./stream
COPY producer ./producer
COPY trainer ./trainer
RUN pip install --no-cache-dir -c constraints.txt .
COPY config ./config
COPY data ./data

ENV STREAMSCORE_CONFIG=/app/config/default.yaml \
    STREAMSCORE_METRICS__HOST=0.0.0.0
EXPOSE 9400
ENTRYPOINT ["streamscore"]
CMD ["worker"]
