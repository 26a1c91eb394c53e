FROM python:3.11-slim
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
