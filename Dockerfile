# carecheck: one image for the migration job, the sync server, the Celery worker and beat (docker-compose.yml).
# Pinned base; Python packages from constraints.txt (the versions CI tested, `make lock`); runs as uid 10001.
FROM python:3.11.13-slim-bookworm

# Java runs pyxform's bundled ODK Validate (JavaRosa) at form-build time: a form Collect cannot open never ships.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The sources (.dockerignore keeps out venvs, node_modules, var/, secrets).
COPY . .
RUN pip install --no-cache-dir -c constraints.txt .

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
