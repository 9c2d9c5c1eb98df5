# Vision Node container image, built from source: a Rust build stage compiles a statically linked
# `vision-node`, and the runtime image is `FROM scratch` around it (no shell, no libc).
#
#   docker build -t vision-node:local .                       # needs the Rust image (RUST_IMAGE)
#   scripts/docker-build.sh vision-node:local                 # picks this file or the host path
#
# The build stage needs a Rust base image (RUST_IMAGE, default rust:1.95-bookworm) present locally
# or pullable. Machines without an image registry (this project's CI among them) build the binary
# on the host instead and use deploy/docker/Dockerfile.host-binary, whose runtime stage is the same
# as this one; scripts/docker-build.sh chooses (`docker image inspect $RUST_IMAGE`). See
# deploy/README.md.
#
# Build args: RUST_IMAGE, VERSION and COMMIT (image labels; scripts/docker-build.sh fills them from
# Cargo.toml and git), CREATED.

ARG RUST_IMAGE=rust:1.95-bookworm

# ---- build stage ----
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The whole workspace (.dockerignore leaves out target/, .git and data).
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --locked --target x86_64-unknown-linux-gnu --bin vision-node \
    && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/vision-node /out/vision-node \
    && { ldd /out/vision-node 2>&1 | grep -Eq 'not a dynamic executable|statically linked'; }

FROM scratch AS binary
COPY --from=build /out/vision-node /vision-node

# ---- runtime image (identical in Dockerfile and deploy/docker/Dockerfile.host-binary) ----
FROM scratch

ARG VERSION=unknown
ARG COMMIT=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="vision-node" \
      org.opencontainers.image.description="Vision Node: a proof-of-work, account-based blockchain node" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}"

# /etc/passwd and /etc/group name uid/gid 10001 (`vision`); /data belongs to it, so a new volume
# mounted there (Docker copies the ownership into it) is writable by the node. Docker adds
# /etc/hosts and /etc/resolv.conf at run time (the libp2p DNS transport reads them).
COPY deploy/docker/rootfs/etc/ /etc/
COPY --chown=10001:10001 deploy/docker/rootfs/data/ /data/
COPY --from=binary /vision-node /vision-node

# Every setting as a `VISION_*` variable (flags would win over them and could only be changed by
# repeating the whole command): override any of them with `-e` / `environment:`.
# The API listens on all interfaces (the container's network); the admin API (ban, unban, dial;
# it needs the token of /data/admin.cookie) and the metrics stay on the container's loopback unless
# told otherwise: docker-compose.yml and deploy/swarm/stack.yml set VISION_METRICS_ADDR=0.0.0.0:9615
# for their Prometheus. Reach the admin API with `docker exec <container> /vision-node admin ...`,
# which reads the cookie in VISION_DATA_DIR by itself.
ENV VISION_DATA_DIR=/data \
    VISION_API_ADDR=0.0.0.0:7070 \
    VISION_ADMIN_ADDR=127.0.0.1:7071 \
    VISION_METRICS_ADDR=127.0.0.1:9615 \
    VISION_LISTEN=/ip4/0.0.0.0/tcp/7000 \
    VISION_LOG_FORMAT=json

# Chain database, node key (`node-key`, created on first start unless VISION_NODE_KEY is set), bans.
VOLUME ["/data"]

# 7000: p2p (libp2p TCP), 7070: HTTP API, 7071: admin API, 9615: /metrics.
EXPOSE 7000 7070 7071 9615

USER 10001:10001

# `vision-node health` GETs /v1/status on 127.0.0.1:7070 (the image has no shell or curl): exit 0
# on a 200 within 2 s. Opening a large database can take a while: 60 s of grace.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/vision-node", "health"]

# SIGTERM (docker stop) shuts the node down gracefully: mining stops, the import in flight
# finishes, the database closes.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/vision-node"]
CMD ["run"]
