# Spine Sandbox: every mocked Spine service on port 9000, the journal on the /data volume.
#   docker build -t spine-sandbox .
#   docker run -p 9000:9000 -v spine-sandbox-data:/data spine-sandbox
# Where no registry is reachable, build on a local base (docker/debian-base.sh makes one from Debian packages):
#   docker build --network host --build-arg BASE_IMAGE=spine-sandbox-base:bookworm -t spine-sandbox .
ARG BASE_IMAGE=python:3.11-slim

# --- build: wheels for the project and every dependency, installed into a self-contained virtual environment -----
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first: this layer is reused for as long as setup.cfg does not change. The postgres extra (psycopg 3
# and its pool) lets the image run as one of several replicas on one PostgreSQL (docs/replicas.md).
COPY pyproject.toml setup.cfg setup.py README.md ./
COPY sandbox/__init__.py sandbox/__init__.py
RUN python3 -m venv /opt/spine-sandbox \
 && /opt/spine-sandbox/bin/pip wheel --wheel-dir /wheels '.[postgres]'
COPY sandbox sandbox
COPY scenarios scenarios
RUN rm -f /wheels/spine_sandbox-* \
 && /opt/spine-sandbox/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/spine-sandbox/bin/pip install --no-index --find-links /wheels 'spine-sandbox[postgres]' \
 && /opt/spine-sandbox/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && find /opt/spine-sandbox/lib/python3*/site-packages/faker/providers -mindepth 2 -maxdepth 2 -type d \
        ! -name en ! -name en_GB ! -name en_US ! -name la ! -name __pycache__ -exec rm -rf {} +
# (The sandbox draws on Faker's English data only, and Latin lorem ipsum is its fallback: the ~70 other locales
# are some 13 MB of the image.)

# --- runtime: the base image, an unprivileged user, and the virtual environment ----------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="Spine Sandbox" \
      org.opencontainers.image.description="A local mock of the NHS Spine for supplier conformance testing" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --gid 10001 sandbox \
 && useradd --uid 10001 --gid sandbox --create-home --home-dir /home/sandbox --shell /usr/sbin/nologin sandbox \
 && mkdir /data && chown sandbox:sandbox /data
COPY --from=build /opt/spine-sandbox /opt/spine-sandbox
# The same SANDBOX_* variables as the command line; these are the container's defaults.
ENV PATH=/opt/spine-sandbox/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SANDBOX_HOST=0.0.0.0 \
    SANDBOX_PORT=9000 \
    SANDBOX_DATA_DIR=/data \
    XDG_CACHE_HOME=/data/cache
USER sandbox
WORKDIR /home/sandbox
VOLUME ["/data"]
EXPOSE 9000
HEALTHCHECK --interval=2s --timeout=2s --start-period=30s --retries=3 \
    CMD ["/opt/spine-sandbox/bin/python", "-m", "sandbox.healthcheck"]
# Exec form: spine-sandbox is PID 1 and gets SIGTERM itself; Granian drains its workers and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["spine-sandbox"]
CMD ["serve"]
