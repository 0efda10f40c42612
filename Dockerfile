# syntax=docker/dockerfile:1.10
#
# One file, two images (DESIGN §1):
#   docker build --target gateway  -t gamesync-gateway  .
#   docker build --target operator -t gamesync-operator .
#
# The builder turns the repository into a wheel and collects wheels for every pinned dependency;
# the final stages install them from that local wheelhouse (no index, no compiler) and keep no
# pip, no sources and no build tools. Both run as a numeric non-root user and write nothing to
# the root filesystem, so `readOnlyRootFilesystem: true` works with no writable mounts.
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (DESIGN §2).

# An exact patch release of the tested Python line (requires-python >= 3.11, CI runs 3.11).
# Pin the digest as well when the build host can resolve it:
#   --build-arg PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-trixie@sha256:<digest>
ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY gateway/gamesync gateway/gamesync
# setup.py's build step copies the browser client into the package for the dev console.
COPY clients/js/src/index.js clients/js/src/index.js
COPY operator/gamesync_operator operator/gamesync_operator
# The wheel first (built in isolation with the build backend pinned in pyproject.toml), then
# wheels for its dependencies: pyproject.toml pins the direct ones exactly (==) and
# constraints.txt every transitive one.
# pip's cache lives in a BuildKit cache mount, so a source edit re-downloads nothing.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /dist . \
 && pip wheel --constraint constraints.txt --wheel-dir /wheels "$(ls /dist/gamesync-*.whl)[operator]"

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="GameSync" \
      org.opencontainers.image.description="Realtime game-state gateway: websocket push over Redis pub/sub, run by a kopf operator" \
      org.opencontainers.image.source="https://github.com/nommie/gamesync" \
      org.opencontainers.image.documentation="https://github.com/nommie/gamesync/blob/main/README.md" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="nommie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The image's own user (numeric, so that runAsNonRoot can verify it); HOME is /tmp because the
# root filesystem is read-only in Kubernetes and nothing here needs a persistent home.
RUN groupadd --system --gid 65532 gamesync \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin gamesync
WORKDIR /tmp

FROM runtime AS gateway
LABEL org.opencontainers.image.title="GameSync gateway"
# Installs from the builder's wheelhouse only (bind-mounted, so no wheel stays in a layer);
# pip compiles the bytecode now, because the running container cannot write it later. pip,
# setuptools and wheel go afterwards: nothing installs anything at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels gamesync \
 && pip uninstall --yes pip setuptools wheel
USER 65532:65532
# In a container the gateway listens on every interface (the CLI's default is 127.0.0.1); the
# internal listener follows --host unless --internal-host / GAMESYNC_INTERNAL_HOST says otherwise.
# Nothing here selects dev mode: the default command is a production gateway that verifies
# tokens with the JWKS it is given and refuses to start without one. What to provide:
#   /etc/gamesync/keys/       a directory holding jwks.json (public keys; mount the JWKS Secret
#                             as a directory, never subPath, so rotations reach it)
#   GAMESYNC_BROKER           redis://, rediss:// or redis+cluster:// URL (default: in-process)
#   GAMESYNC_PUBLISH_TOKEN    optional: enables HTTP publish on the internal port
#   /etc/gamesync/runtime/    optional: runtime.json (tracing, log level), with
#                             GAMESYNC_RUNTIME_CONFIG=/etc/gamesync/runtime/runtime.json
# The operator sets all of these for the pods it runs. For a laptop: `gamesync gateway --dev`.
ENV GAMESYNC_HOST=0.0.0.0
EXPOSE 8000 9000
ENTRYPOINT ["gamesync"]
CMD ["gateway", "--keys", "/etc/gamesync/keys/jwks.json"]

FROM runtime AS operator
LABEL org.opencontainers.image.title="GameSync operator"
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "gamesync[operator]" \
 && pip uninstall --yes pip setuptools wheel
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["gamesync"]
CMD ["operator", "--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]
