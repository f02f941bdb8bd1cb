# ometria-sync in a container: mount the job folder at /job and keep state on a volume.
#   docker run --rm -e OMETRIA_API_KEY -v "$PWD/config:/job" -v sync-state:/job/state \
#     ometria-sync run /job/example.toml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# exactly the locked versions, hashes checked; then the package itself without resolving again
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY ometria_sync ./ometria_sync
RUN pip install --no-deps --no-build-isolation . && rm -rf /src

# uid and gid 10001: deploy/kubernetes/base/cronjob.yaml runs as them (runAsUser, runAsGroup,
# fsGroup), with a read-only root filesystem and /job/state and /tmp as volumes
RUN groupadd --gid 10001 sync \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin sync \
    && mkdir -p /job/state && chown -R 10001:10001 /job
USER 10001:10001
WORKDIR /job
VOLUME ["/job/state"]
ENTRYPOINT ["ometria-sync"]
CMD ["--help"]
