# nightshift as an image: `docker build -t nightshift:latest .` (the image
# deploy/kubernetes/nightshift.yaml runs). Multi-stage: the build stage has the
# Rust toolchain and the C libraries the -sys crates build against; the runtime
# stage is Debian slim with only what nightshift calls at run time (ssh, git,
# the CA bundle, OpenSSL's and zlib's shared libraries), as a non-root user.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
# The built-in prompts and tool descriptions are compiled in (include_str!).
COPY prompts prompts
COPY tools tools
COPY benches benches
COPY tests tests
RUN cargo build --release --locked --bin nightshift \
 && install -m 0755 target/release/nightshift /usr/local/bin/nightshift

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client git libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 nightshift \
 && useradd --system --uid 65532 --gid 65532 --home-dir /home/nightshift --create-home --shell /usr/sbin/nologin nightshift \
 && mkdir -p /workspace/memory \
 && chown 65532:65532 /workspace/memory
COPY --from=build /usr/local/bin/nightshift /usr/local/bin/nightshift
# The default workspace (checks of the container's own host); mount your own
# AGENTS.md and HEARTBEAT.md over these, and a volume on /workspace/memory.
COPY AGENTS.md HEARTBEAT.md /workspace/
COPY prompts /workspace/prompts
COPY tools /workspace/tools
ENV HOME=/home/nightshift
USER 65532:65532
WORKDIR /workspace
EXPOSE 9469
ENTRYPOINT ["/usr/local/bin/nightshift"]
CMD ["--workspace", "/workspace", "serve", "--listen", "0.0.0.0:9469"]
