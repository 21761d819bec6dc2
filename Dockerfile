# carecheck: one image for the sync server, the Celery worker and beat (see docker-compose.yml).
FROM python:3.11-slim-bookworm

# Java runs pyxform's bundled ODK Validate (JavaRosa) at form-build time: a form Collect cannot open never ships.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY forms forms
COPY sync_server sync_server
COPY console console
COPY edge edge
COPY simulator simulator
COPY aggregator aggregator
COPY migrations migrations
COPY cli cli
RUN pip install --no-cache-dir .

# Compile the XLSForms into the image; the server serves exactly these bytes.
ENV CARECHECK_VAR_DIR=/var/lib/carecheck \
    CARECHECK_FORMS_BUILD_DIR=/app/forms-build
RUN carecheck forms build --out /app/forms-build

RUN useradd --system --home /var/lib/carecheck carecheck \
 && mkdir -p /var/lib/carecheck && chown carecheck /var/lib/carecheck
USER carecheck
EXPOSE 8000
CMD ["carecheck", "serve", "--host", "0.0.0.0", "--port", "8000"]
