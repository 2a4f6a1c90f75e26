# ecs-state worker: the KCL MultiLangDaemon (Java 17) running our Python record processor, as user 10001.
# Build:  scripts/image build   (on a machine without a registry it builds the Debian base first; see there)
#   or:   scripts/image docker-push --repository REGISTRY/NAME --tag TAG   (Docker buildx, both architectures)
#   or:   podman build --build-arg BASE=<a Debian bookworm image> -t ecs-state-worker:dev .
# The CLI: docker run --entrypoint ecs-state IMAGE COMMAND ... (docs/image.md).
# Run:    the entry point is ecs-state-worker (deploy/image/ecs-state-worker): `ecs-state run` on the properties
#         file mounted at /etc/ecs-state/worker.properties (or named by ECS_STATE_PROPERTIES), rendered at start
#         with every KCL_<key> variable (KCL_streamName, ...) as <key>; without a file, KCL_* variables fill the
#         image's copy of properties/aws.properties. ECS_STATE_<KEY> variables set the processor's ecsState.* keys
#         (processor/config.py). Arguments go to `ecs-state run` (default: --restart-on-failure).
# Everything is fetched at build time (Debian packages, PyPI at the versions of requirements.lock, the KCL jars
# from Maven Central): nothing at run time.
# Architectures: amd64 and arm64 (scripts/image build --arch arm64: the base and the RUN steps are that
# architecture's; nothing here names one). docs/image.md: building, pushing to ECR, the health check.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE} AS runtime

# Bookworm: python3 is 3.11 (the Python requirements.lock is compiled for), openjdk-17-jre-headless is Java 17.
# ca-certificates: amazon-kclpy's setup.py fetches the jars over HTTPS with Python's urllib, which uses the
# system trust store. man1: slim bases drop /usr/share/man, and the JRE's postinst (update-alternatives for
# java.1.gz) fails without the folder.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv openjdk-17-jre-headless ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

# A fixed non-root uid, so a host folder mounted for logs can be given to it (chown 10001).
RUN groupadd --system --gid 10001 ecs \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/ecs --create-home --shell /usr/sbin/nologin ecs \
 && install -d -o ecs -g ecs /etc/ecs-state

ENV VIRTUAL_ENV=/opt/ecs-state \
    PATH=/opt/ecs-state/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The runtime dependencies, read from setup.cfg's install_requires and its worker extra (amazon-kclpy: the daemon's
# jars) in a stage of its own: the layer that downloads boto3 and the ~80 KCL jars is then reused until those
# lists or requirements.lock change.
FROM runtime AS requirements
COPY setup.cfg /tmp/setup.cfg
RUN python3 -c 'import configparser; c = configparser.ConfigParser(); c.read("/tmp/setup.cfg"); \
print(c["options"]["install_requires"].strip()); print(c["options.extras_require"]["worker"].strip())' \
    > /tmp/requirements.txt

FROM runtime
# /run/build-ca.crt: a CA bundle the build may mount (scripts/image mounts the host's, for machines whose
# HTTPS goes through an intercepting proxy); used only by these RUN steps, never part of the image.
# requirements.lock is a constraint file here: install_requires, the worker extra and what they pull in, at the
# locked versions (the test and bench extras in it are not installed).
COPY --from=requirements /tmp/requirements.txt /tmp/build/requirements.txt
COPY requirements.lock /tmp/build/requirements.lock
RUN if [ -s /run/build-ca.crt ]; then export PIP_CERT=/run/build-ca.crt SSL_CERT_FILE=/run/build-ca.crt; fi \
 && python3 -m venv "$VIRTUAL_ENV" \
 && pip install --quiet -c /tmp/build/requirements.lock -r /tmp/build/requirements.txt \
 && python -c 'import pathlib, sys, amazon_kclpy; j = pathlib.Path(amazon_kclpy.__file__).parent / "jars"; \
sys.exit(0 if any(j.glob("amazon-kinesis-client-multilang-*.jar")) else "no KCL jars in " + str(j))'

# The package itself, not editable, without resolving again (.dockerignore keeps .venv, .local, .git ... out of
# the context); pip check proves the locked dependencies satisfy it. (Building it fetches setuptools: HTTPS.)
COPY . /tmp/build/src
RUN if [ -s /run/build-ca.crt ]; then export PIP_CERT=/run/build-ca.crt SSL_CERT_FILE=/run/build-ca.crt; fi \
 && pip install --quiet --no-deps /tmp/build/src && pip check \
 && install -m 0755 /tmp/build/src/deploy/image/ecs-state-worker /usr/local/bin/ecs-state-worker \
 && install -D -m 0644 /tmp/build/src/properties/aws.properties /usr/local/share/ecs-state/aws.properties \
 && rm -rf /tmp/build && ecs-state run --help >/dev/null

USER 10001:10001
WORKDIR /home/ecs
# ECS_STATE_HEARTBEAT_DIR: where ecs-state run and its shard processors touch their liveness files
# (processor/shard/heartbeat.py), read by the health check below.
ENV HOME=/home/ecs \
    ECS_STATE_PROPERTIES=/etc/ecs-state/worker.properties \
    ECS_STATE_HEARTBEAT_DIR=/tmp/ecs-state/heartbeat

# Healthy while the KCL daemon runs and each shard processor it holds is processing or idle: a stat per
# heartbeat file, no AWS call (~50 ms of CPU). The task definition restates it (ECS ignores an image's).
# Docker image format only (scripts/image builds with --format docker; OCI has no HEALTHCHECK).
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
  CMD ["python", "-m", "processor.worker.liveness"]

ENTRYPOINT ["/usr/local/bin/ecs-state-worker"]
CMD ["--restart-on-failure"]
