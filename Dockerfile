# carecheck: one image for the migration job, the sync server, the Celery worker and beat (docker-compose.yml).
# Pinned bases; Python packages from constraints.txt (the versions CI tested, `make lock`), Node packages from
# package-lock.json; runs as uid 10001.

# Stage 1, Node: the field web app's bundle (fieldapp/build.mjs: esbuild + sass) and enketo-transformer with
# its native XSLT, which the form build runs to give every form its web-app version (forms/enketo.py). Same
# Debian release as the runtime stage, so the native modules link against the same libraries.
FROM node:20.20.2-bookworm-slim AS node
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# The same steps as `make install` (Makefile): no install scripts, then the two native XSLT modules, in order.
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npm rebuild node1-libxmljsmt-myh --loglevel=error \
 && npm rebuild libxslt --loglevel=error
COPY fieldapp ./fieldapp
RUN node fieldapp/build.mjs

# Stage 2, the runtime.
FROM python:3.11.13-slim-bookworm

# Java runs pyxform's bundled ODK Validate (JavaRosa) at form-build time: a form Collect cannot open never ships.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Node (form build: the Enketo transform) and the Node packages it needs, from stage 1.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /app/node_modules /app/node_modules
# The sources (.dockerignore keeps out venvs, node_modules, the built web app, var/, secrets), then the web app
# built in stage 1. Installed in place (-e): the code runs from /app beside node_modules and fieldapp/static.
COPY . .
COPY --from=node /app/fieldapp/static /app/fieldapp/static
RUN pip install --no-cache-dir -c constraints.txt -e .

# Compile the XLSForms into the image; the server serves exactly these bytes.
ENV CARECHECK_VAR_DIR=/var/lib/carecheck \
    CARECHECK_FORMS_BUILD_DIR=/app/forms-build
RUN carecheck forms build --out /app/forms-build

# Non-root: a fixed uid so volume ownership survives image rebuilds. The named volume for /var/lib/carecheck
# starts as a copy of this directory, owned by carecheck.
RUN groupadd --system --gid 10001 carecheck \
 && useradd --system --uid 10001 --gid carecheck --home-dir /var/lib/carecheck --shell /usr/sbin/nologin carecheck \
 && mkdir -p /var/lib/carecheck && chown carecheck:carecheck /var/lib/carecheck
USER carecheck:carecheck
EXPOSE 8000
CMD ["carecheck", "serve", "--host", "0.0.0.0", "--port", "8000"]
