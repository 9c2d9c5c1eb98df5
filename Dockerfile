# Vision Node container image: a statically linked `vision-node` binary in an empty (`scratch`) image.
#
# The binary is built on the HOST, not in a Rust build stage: the clusters this image is for run on
# machines that may not reach an image registry, so no base image (not even `rust` or `debian`) is
# pulled. Build the binary first, then the image, from the repository root:
#
#   CARGO_TARGET_DIR=target/static RUSTFLAGS='-C target-feature=+crt-static' \
#       cargo build --release --target x86_64-unknown-linux-gnu --bin vision-node
#   docker build -t vision-node:local .
#
# (`scripts/cluster-test.sh` does both.) `.dockerignore` keeps the build context to that one file.
# The image holds nothing but the binary: no shell, no libc, no CA certificates (the node speaks
# no TLS), no /etc files of its own (Docker mounts /etc/hosts and /etc/resolv.conf, which the
# libp2p DNS transport reads to resolve `/dns4/...` bootstrap addresses such as `bootnode`).
#
# Inside the container the node listens on all interfaces: API on 7070, admin API on 7071, metrics
# on 9615, p2p on 7000. The admin API (ban, unban, dial) has no authentication: publish it to no
# host port; in docker-compose.yml it is reachable only from the cluster's private network.
FROM scratch

# Path of the static binary inside the build context.
ARG BINARY=target/static/x86_64-unknown-linux-gnu/release/vision-node

COPY ${BINARY} /vision-node

# Chain database, node key (`node-key`, created on first start unless --node-key is given) and bans.
VOLUME ["/data"]

# 7000: p2p (libp2p TCP), 7070: HTTP API, 7071: admin API (private network only), 9615: /metrics.
EXPOSE 7000 7070 7071 9615

# Flags win over `VISION_*` environment variables: per-container settings that are not flags below
# (VISION_BOOTSTRAP, VISION_NODE_KEY, VISION_MINE_THREADS, ...) can be set as environment variables;
# changing one of the flags below needs a `command:` that repeats them all.

# SIGTERM (docker stop) shuts the node down gracefully: mining stops, the import in flight finishes,
# the database closes.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/vision-node"]
CMD ["run", \
     "--data-dir", "/data", \
     "--api-addr", "0.0.0.0:7070", \
     "--admin-addr", "0.0.0.0:7071", \
     "--metrics-addr", "0.0.0.0:9615", \
     "--listen", "/ip4/0.0.0.0/tcp/7000", \
     "--log-format", "json"]
