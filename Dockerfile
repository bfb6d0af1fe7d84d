# Handoff's worker and API image (one image, two commands; see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY handoff ./handoff
COPY workflows ./workflows
COPY activities ./activities
COPY bench ./bench
RUN pip install . && useradd --system --uid 10001 handoff
USER handoff

# The API by default; the worker service overrides the command with `python worker.py`.
EXPOSE 8000
CMD ["handoff", "api", "--host", "0.0.0.0", "--port", "8000"]
