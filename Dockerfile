FROM python:3.11-slim
# A Unicode font for the auditors' PDF exports (names like "Ömer", "Türkiye").
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY eventstore eventstore
COPY api api
COPY cli cli
COPY worker.py ./
RUN pip install --no-cache-dir .
USER nobody
CMD ["eom", "worker"]
