# syntax=docker/dockerfile:1
#
# Hammond container image.
#
#   docker build -t hammond .
#   docker run --rm -p 5060:5060/udp -p 5060:5060/tcp -p 8080:8080 -p 20000-29999:20000-29999/udp \
#     -e HAMMOND_SIP_PUBLIC_ADDRESS=<host IP the PBX reaches> \
#     -e HAMMOND_TRUNK_PASSWORD=... -e HAMMOND_AGENT_ALICE_TOKEN=... \
#     -v hammond-data:/app/data hammond
#
# The image listens on all interfaces (HAMMOND_SIP_LISTEN, HAMMOND_HTTP_LISTEN below), so the
# SIP/SDP address to advertise must be given: HAMMOND_SIP_PUBLIC_ADDRESS, or sip.public_address
# in a config mounted over /app/config/hammond.toml (which is also where trusted_sources, the
# trunk and the agents belong). `hammond check-config --config config/hammond.toml` validates it.
# Publishing 10 000 RTP ports through docker-proxy is slow; `--network host` avoids it (or narrow
# media.rtp_ports and publish only that range).

# ---- build ----------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole context (see .dockerignore): src/, plus migrations or a build script wherever the
# store layer keeps them.
COPY . .
# Keep the registry and target dir between builds; copy the binary out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin hammond \
 && install -m 0755 target/release/hammond /usr/local/bin/hammond

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim
# The system's CA certificates: what a TLS trunk's certificate is checked against unless
# [sip.trunk] ca_file names others.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 hammond \
 && useradd --system --uid 10001 --gid hammond --home-dir /app --shell /usr/sbin/nologin hammond
WORKDIR /app
COPY --from=build /usr/local/bin/hammond /usr/local/bin/hammond
COPY config/ ./config/
COPY prompts/ ./prompts/
# Relative paths in the config resolve against the working directory: /app/config/queues,
# /app/prompts, /app/data (voicemail and the SQLite file; mount a volume to keep them).
RUN mkdir -p /app/data && chown hammond:hammond /app/data
VOLUME ["/app/data"]

ENV HAMMOND_SIP_LISTEN=0.0.0.0:5060 \
    HAMMOND_HTTP_LISTEN=0.0.0.0:8080

USER hammond:hammond
# SIP (UDP and TCP; TLS on 5061 when sip.tls_listen says so), HTTP API + Home List + /metrics
# + /healthz, RTP (media.rtp_ports).
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp 20000-29999/udp
# SIGTERM starts a graceful drain (shutdown.drain_timeout, 30 s by default); give it time.
STOPSIGNAL SIGTERM
CMD ["hammond", "run", "--config", "config/hammond.toml"]
