#!/usr/bin/env bash
# `make demo`: the appliance between two network namespaces on af_packet/veth ports, with
# ping and an iperf3 TCP stream through it, its stats line printed every second, ~15 s total.
#
# Extension points (environment):
#   RAMPART      the binary (default: target/release/rampart)
#   DEMO_SECS    how long the appliance runs (default 15)
#   DEMO_ARGS    extra rampart flags (e.g. a policy/config once the firewall pipeline lands)
#   DEMO_TRAFFIC a shell function name to generate traffic instead of demo_traffic
#                (e.g. a pktgen run); it gets the netns tag as $1
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/netns.sh

RAMPART=${RAMPART:-${CARGO_TARGET_DIR:-target}/release/rampart}
DEMO_SECS=${DEMO_SECS:-15}
TAG=${DEMO_TAG:-rpdemo}
LOG=$(mktemp /tmp/rampart-demo.XXXXXX)

cleanup() {
  [ -n "${APP_PID:-}" ] && kill "$APP_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  netns_down "$TAG"
  rm -f "$LOG"
}
trap cleanup EXIT INT TERM

demo_traffic() {
  local t=$1
  echo "demo: ping ${NETNS_IP_B} from namespace ${t}na through the appliance"
  ip netns exec "${t}na" ping -c 4 -i 0.3 -W 2 "$NETNS_IP_B" | sed 's/^/  ping: /'
  echo "demo: iperf3 TCP ${t}na -> ${t}nb through the appliance for 8 s"
  ip netns exec "${t}nb" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  sleep 0.5
  ip netns exec "${t}na" iperf3 -c "$NETNS_IP_B" -p 5201 -t 8 -i 2 -f m 2>&1 | sed 's/^/  iperf3: /'
}

[ -x "$RAMPART" ] || { echo "demo: $RAMPART not built (run make demo)"; exit 1; }
netns_up "$TAG"
echo "demo: namespaces ${TAG}na (${NETNS_IP_A}) and ${TAG}nb (${NETNS_IP_B}) are joined only through rampart"

# shellcheck disable=SC2046,SC2086
"$RAMPART" --inside "$(netns_vdev_a "$TAG")" --outside "$(netns_vdev_b "$TAG")" \
  --duration "$DEMO_SECS" --stats-interval-ms 1000 ${DEMO_ARGS:-} \
  -- -l 0,1 --no-pci --log-level=lib.eal:error $(scripts/eal-mem.sh rampart-demo) >"$LOG" 2>&1 &
APP_PID=$!
tail -n +1 -f --pid="$APP_PID" "$LOG" &
for _ in $(seq 100); do grep -q "rampart: forwarding" "$LOG" && break; sleep 0.1; done
grep -q "rampart: forwarding" "$LOG" || { echo "demo: rampart did not start"; exit 1; }

"${DEMO_TRAFFIC:-demo_traffic}" "$TAG"
wait "$APP_PID" || { echo "demo: rampart failed"; exit 1; }
APP_PID=""
sleep 0.3
echo "demo: done"
