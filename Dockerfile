# syntax=docker/dockerfile:1
#
# Hammond container image.
#
#   docker build -t hammond .
#   docker run --rm --network host \
#     -e HAMMOND_SIP_PUBLIC_ADDRESS=<host IP the PBX reaches> \
#     -v $PWD/my-hammond.toml:/etc/hammond/hammond.toml:ro -v hammond-data:/app/data hammond
#
# The config is /etc/hammond/hammond.toml: by default deploy/hammond.toml, which holds no site
# address and no secret (no agent, no token) and listens on every interface. Mount your own
# over it, and give what is missing through the environment: HAMMOND_SIP_PUBLIC_ADDRESS (required:
# the SIP/SDP address to advertise), HAMMOND_AGENT_<ID>_TOKEN for each agent,
# HAMMOND_TRUNK_USERNAME/PASSWORD, HAMMOND_STORE_URL (postgres://...), HAMMOND_SIP_LISTEN,
# HAMMOND_HTTP_LISTEN, HAMMOND_MEDIA_RTP_PORTS. Queue files are in /app/config/queues (the
# shipped examples; mount yours over them), prompts in /app/prompts.
#   docker run --rm -v ...:/etc/hammond/hammond.toml:ro -e ... hammond \
#     hammond check-config --config /etc/hammond/hammond.toml
# validates it. Publishing 10 000 RTP ports through docker-proxy is slow: `--network host`
# avoids it (or narrow media.rtp_ports and publish only that range).
# deploy/docker-compose.yml runs two instances on PostgreSQL behind Kamailio.

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
# The example queues and the prompts; not config/hammond.toml, whose example agent has a
# well-known token.
COPY config/queues/ ./config/queues/
COPY prompts/ ./prompts/
COPY deploy/hammond.toml /etc/hammond/hammond.toml
# Relative paths in the config resolve against the working directory: /app/config/queues,
# /app/prompts, /app/data (voicemail and the SQLite file; mount a volume to keep them).
RUN mkdir -p /app/data && chown hammond:hammond /app/data
VOLUME ["/app/data"]

USER hammond:hammond
# SIP (UDP and TCP; TLS on 5061 when sip.tls_listen says so), HTTP API + Home List + /metrics
# + /healthz, RTP (media.rtp_ports).
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp 20000-29999/udp
# Liveness only: unhealthy when the HTTP server no longer answers /healthz. Its 503 (the store
# away, a queue file edit refused while the last good one keeps running) is for monitoring: a
# restart fixes neither and would drop the calls in progress. With another [http] listen port,
# override this (compose does: `hammond alive --addr 127.0.0.1:8081`).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["hammond", "alive", "--addr", "127.0.0.1:8080"]
# SIGTERM starts a graceful drain (shutdown.drain_timeout, 30 s by default); give it time.
STOPSIGNAL SIGTERM
CMD ["hammond", "run", "--config", "/etc/hammond/hammond.toml"]
