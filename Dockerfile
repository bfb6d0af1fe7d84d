# Handoff's worker and API image (one image, two commands; see docker-compose.yml).

# The console's front-end packages, from the npm registry at build time (docs/console.md).
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
COPY scripts/build-web.mjs ./scripts/
RUN npm ci --omit=dev --no-audit --no-fund && npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY handoff ./handoff
COPY --from=web /web/handoff/web/vendor ./handoff/web/vendor
COPY workflows ./workflows
COPY activities ./activities
COPY bench ./bench
# The bytecode of the code run from /app, written now: PYTHONDONTWRITEBYTECODE stops the worker writing it, and the
# workflow sandbox imports workflows/conversation.py afresh for every conversation (handoff/sandbox.py).
RUN pip install . && python -m compileall -q worker.py handoff workflows activities && useradd --system --uid 10001 handoff
USER handoff

# The API by default; the worker service overrides the command with `python worker.py`.
EXPOSE 8000
CMD ["handoff", "api", "--host", "0.0.0.0", "--port", "8000"]
