# botwatch image: the `botwatch` command line (setup, worker, generate, emit, dlq, ...).
#
#   docker build -t botwatch:0.1.0 .
#   docker run --rm botwatch:0.1.0 --help
#
# docker-compose.yml builds and runs it next to Kafka and OpenSearch.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# An unprivileged user and the worker's state directory (table state lives here; a named
# volume mounted on it inherits this ownership).
RUN groupadd --system --gid 10001 botwatch \
 && useradd --system --uid 10001 --gid botwatch --home-dir /home/botwatch --create-home \
      --shell /usr/sbin/nologin botwatch \
 && install -d -o botwatch -g botwatch -m 0750 /var/lib/botwatch

WORKDIR /src

# Dependencies first, exactly as locked (every file checked against its hash), so this layer
# is rebuilt only when the lock file changes.
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --require-hashes -r requirements/lock.txt

# Then botwatch itself, without resolving anything beyond the lock.
COPY . .
RUN pip install --no-deps . \
 && rm -rf /src

WORKDIR /home/botwatch
USER botwatch:botwatch

ENV BOTWATCH_STATE_DIR=/var/lib/botwatch

# The worker's web server (/metrics /health /ready /status).
EXPOSE 6066

ENTRYPOINT ["botwatch"]
CMD ["--help"]
