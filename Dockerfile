# Production image. It installs with scripts/install.sh, the same script `make` and .ci/run
# use, so what CI proves about the install is what the image does.
# GraphiQL's and the console's browser assets from the npm registry, so the image serves them
# offline.
FROM node:22-slim AS browser-assets
WORKDIR /assets
COPY scripts/fetch-graphiql.sh scripts/fetch-console.sh ./
RUN sh fetch-graphiql.sh /assets/graphiql && sh fetch-console.sh /assets/console

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY src ./src
COPY --from=browser-assets /assets/graphiql ./src/bookql/server/static/graphiql
COPY --from=browser-assets /assets/console ./src/bookql/server/static/console
RUN VENV=/opt/bookql EDITABLE=0 sh scripts/install.sh

FROM python:3.12-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/bookql bookql
COPY --from=build /opt/bookql /opt/bookql
COPY crawler /opt/bookql-crawler
ENV PATH=/opt/bookql/bin:$PATH \
    BOOKQL_CRAWLER_DIR=/opt/bookql-crawler \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BOOKQL_ENV=production \
    BOOKQL_DATA_DIR=/var/lib/bookql
USER bookql
WORKDIR /var/lib/bookql
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=4s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3).status != 200)"]
# BOOKQL_DATABASE_URL and BOOKQL_JWT_SECRET come from the environment; production refuses
# to start without a real secret.
CMD ["bookql", "serve", "--host", "0.0.0.0", "--port", "8000"]
