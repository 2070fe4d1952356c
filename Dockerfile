# Multi-stage build on Debian bookworm: the same librocksdb-dev the Makefile links against.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends librocksdb-dev libclang-dev clang pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu
RUN cargo build --release --bin licvault

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends librocksdb7.8 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/licvault --create-home licvault
COPY --from=build /src/target/release/licvault /usr/local/bin/licvault
COPY --chown=licvault:licvault fixtures/catalogue.json fixtures/departments.json /etc/licvault/fixtures/
# No key is in the image: mount the serving keys (made by `licvault keys init`, root CA key kept
# elsewhere) at /etc/licvault/keys, read-only, owned by uid 10001 with private files 0600:
#   docker run -v /srv/licvault/keys:/etc/licvault/keys:ro -v licvault-data:/var/lib/licvault …
# The server refuses to start with the public development keys of the repository unless --demo.
USER licvault
ENV LICVAULT_LISTEN=0.0.0.0:8080 \
    LICVAULT_DATA=/var/lib/licvault/data \
    LICVAULT_KEYS=/etc/licvault/keys \
    LICVAULT_FIXTURES=/etc/licvault/fixtures
VOLUME /var/lib/licvault
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["licvault"]
CMD ["serve"]
