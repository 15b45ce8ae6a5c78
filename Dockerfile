# Proxboard behind a reverse proxy: migrations run as the release step, then gunicorn serves the factory.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FLASK_APP=wsgi \
    PROXBOARD_PROXY_FIX=true

RUN useradd --create-home --uid 10001 proxboard
WORKDIR /app

COPY pyproject.toml README.md wsgi.py ./
COPY app ./app
COPY migrations ./migrations
COPY catalog ./catalog
RUN pip install --no-cache-dir -e '.[redis]' && mkdir -p /app/instance && chown -R proxboard:proxboard /app/instance

USER proxboard
VOLUME ["/app/instance"]
EXPOSE 8000

# One worker process with threads keeps the Proxmox read cache shared by every request;
# scale out with more containers (and PROXBOARD_REDIS_URL for the job queue).
# The job consumer (provisioning, service checks) runs beside gunicorn; with PROXBOARD_REDIS_URL
# it can run in its own container instead (command: flask worker).
ENTRYPOINT ["sh", "-c", "flask db upgrade && { [ \"$PROXBOARD_EMBEDDED_WORKER\" = false ] || flask worker & } && exec gunicorn --bind 0.0.0.0:8000 --worker-class gthread --workers ${GUNICORN_WORKERS:-1} --threads ${GUNICORN_THREADS:-16} --timeout 60 --access-logfile - 'app:create_app()'"]
