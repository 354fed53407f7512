# Rampart appliance image: build against Debian 12's DPDK 22.11, ship only the binary and the
# DPDK runtime libraries (EAL loads the PMD plugins from their driver directory at start-up).
#
#   docker build -t rampart .        # BuildKit (default since Docker 23; DOCKER_BUILDKIT=1 on 20.10)
#   docker run --rm --network host --cap-add IPC_LOCK --cap-add NET_ADMIN --cap-add NET_RAW \
#     --cap-add SYS_ADMIN --cap-add SYS_NICE -v /dev/hugepages:/dev/hugepages \
#     rampart --config /etc/rampart/rampart.toml
#
# No `# syntax=` line: the builder's own Dockerfile frontend handles the cache mounts below, and
# pinning one would make the build fetch it from Docker Hub, which an offline build host cannot.
# scripts/docker-check.sh builds this and runs it the ways the README documents.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdpdk-dev pkg-config clang libclang-dev libpcap-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so editing sources does not refetch crates.
COPY Cargo.toml Cargo.lock ./
COPY config config
COPY control control
COPY dataplane dataplane
COPY pktgen pktgen
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p rampart --bin rampart -p rampart-control --bin rampartctl \
 && install -D -m 0755 target/release/rampart /out/rampart \
 && install -D -m 0755 target/release/rampartctl /out/rampartctl

FROM debian:bookworm-slim AS runtime
# librte-meta-allpmds: every poll-mode driver (PCI NICs, af_packet, memif, pcap, ring, null,
# vhost, virtio_user) and the EAL/ethdev/mbuf/mempool libraries they and rampart link against.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librte-meta-allpmds librte-eal23 librte-ethdev23 librte-mbuf23 librte-mempool23 \
      librte-ring23 librte-net23 librte-kvargs23 librte-telemetry23 libbsd0 \
      iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# rampartctl beside it: `docker exec <container> rampartctl stats --endpoint <metrics_listen>`,
# `rampartctl flows`, and `rampartctl validate` for a policy file before it is mounted.
COPY --from=build /out/rampart /out/rampartctl /usr/local/bin/
COPY config/rampart.toml /etc/rampart/rampart.toml
# Hugepages come from the host: mount its hugetlbfs at /dev/hugepages (or run the EAL with
# --no-huge -m 512 --file-prefix=rampart for a small, slower setup).
VOLUME ["/dev/hugepages"]
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["--config", "/etc/rampart/rampart.toml"]
