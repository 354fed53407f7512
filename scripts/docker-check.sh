#!/usr/bin/env bash
# Builds the appliance image and runs it the ways the README documents, checking each run
# forwards and stops cleanly on SIGINT:
#   1. hugepages from the host (-v /dev/hugepages, the README's capabilities),
#   2. --no-huge (no hugepages, fewer capabilities),
#   3. the firewall: the example policy from a mounted file, its metrics read with the image's
#      own `rampartctl stats`.
# Needs a Docker daemon with BuildKit (default since Docker 23; DOCKER_BUILDKIT=1 on 20.10)
# and the base images (rust:1-bookworm, debian:bookworm-slim) pulled or pullable.
# Not part of `make test`: it takes minutes and a daemon CI machines do not have.
#
#   scripts/docker-check.sh    # DOCKER=/usr/bin/docker picks a client; BUILD_OPTS="--network host"
#                              # for a daemon without a bridge network
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
IMAGE=${IMAGE:-rampart:check}
METRICS=127.0.0.1:${METRICS_PORT:-9471}
RUN=$(mktemp -d)
NAME=rampart-check-$$
cleanup() {
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

# shellcheck disable=SC2086
DOCKER_BUILDKIT=1 "$DOCKER" build ${BUILD_OPTS:-} -t "$IMAGE" .

# Runs the image with the given docker options and rampart arguments for a few seconds,
# then SIGINT; fails unless it exited 0 after forwarding packets. $1 is the label.
check_run() {
  local label=$1 opts=$2
  shift 2
  # shellcheck disable=SC2086
  "$DOCKER" run --name "$NAME" -d --network host $opts "$IMAGE" "$@" >/dev/null
  sleep 5
  [ -n "${ON_RUNNING:-}" ] && "$ON_RUNNING"
  "$DOCKER" kill -s INT "$NAME" >/dev/null 2>&1 || true
  local rc
  rc=$("$DOCKER" wait "$NAME")
  "$DOCKER" logs "$NAME" >"$RUN/$label.log" 2>&1
  "$DOCKER" rm -f "$NAME" >/dev/null
  if [ "$rc" != 0 ] || ! grep -q "stopped cleanly" "$RUN/$label.log" \
    || ! grep -Eq 'in0 +net_null0 +rx +[1-9]' "$RUN/$label.log"; then
    echo "docker-check: $label: FAILED (exit $rc)"
    tail -20 "$RUN/$label.log"
    exit 1
  fi
  echo "docker-check: $label: ok ($(grep -Eo 'in0 +net_null0 +rx +[0-9]+ pkts' "$RUN/$label.log" | tr -s ' '))"
}

# EAL places hugepage memory with set_mempolicy/mbind, which Docker's default seccomp
# profile allows only with CAP_SYS_NICE.
CAPS="--cap-add IPC_LOCK --cap-add NET_ADMIN --cap-add NET_RAW"
check_run hugepages "$CAPS --cap-add SYS_ADMIN --cap-add SYS_NICE -v /dev/hugepages:/dev/hugepages" \
  --config /etc/rampart/rampart.toml
check_run no-huge "$CAPS" \
  --config /etc/rampart/rampart.toml -- -l 0,1 --no-pci --no-huge -m 512 --file-prefix=rampart

cat >"$RUN/firewall.toml" <<TOML
[[pairs]]
inside = "net_null0"
outside = "net_null1"

[control]
node = "docker-check"
policy_file = "/etc/rampart/policy.json"
state_dir = "/var/lib/rampart"
metrics_listen = "$METRICS"
TOML
# Through the image's own rampartctl, as an operator would.
sample_metrics() {
  "$DOCKER" exec "$NAME" rampartctl stats --endpoint "$METRICS" >"$RUN/metrics.txt" 2>&1 || true
}
ON_RUNNING=sample_metrics check_run firewall \
  "$CAPS -v $RUN/firewall.toml:/etc/rampart/rampart.toml:ro -v $PWD/config/policy.example.json:/etc/rampart/policy.json:ro" \
  --config /etc/rampart/rampart.toml -- -l 0,1 --no-pci --no-huge -m 512 --file-prefix=rampart
# net_null's frames are not IP, so the firewall counts them malformed: what matters here is
# that the policy loaded and the pipeline and metrics run inside the container.
grep -Eq '^ *rampart_policy_generation +1 *$' "$RUN/metrics.txt" || {
  echo "docker-check: firewall: policy generation 1 not in rampartctl stats"
  head -20 "$RUN/metrics.txt"
  exit 1
}
echo "docker-check: firewall: ok (rampartctl stats in the container shows policy generation 1)"
