#!/usr/bin/env bash
# `make demo`: the firewall with the example policy (config/policy.example.json) between two
# memif ports, and pktgen in a second process driving a traffic mix through it for 10 s:
# allowed TCP sessions, DNS and ping; blocklisted UDP (dropped); dev→prod SYNs (rejected with
# RSTs). The appliance prints a stats line every second; at the end pktgen prints its table,
# the metrics endpoint is sampled, and the appliance prints its summary. No NIC, no broker.
#
#   RAMPART / PKTGEN   binaries (default: target/release/{rampart,pktgen})
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
RAMPART=${RAMPART:-$TARGET/release/rampart}
PKTGEN=${PKTGEN:-$TARGET/release/pktgen}
for b in "$RAMPART" "$PKTGEN"; do [ -x "$b" ] || { echo "demo: $b not built (run make demo)"; exit 1; }; done

RUN=$(mktemp -d /tmp/rampart-demo.XXXXXX)
METRICS=127.0.0.1:${DEMO_METRICS_PORT:-9464}
cleanup() {
  [ -n "${APP_PID:-}" ] && kill "$APP_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

cat >"$RUN/rampart.toml" <<TOML
[[pairs]]
inside = "net_memif0,role=server,socket=$RUN/inside.sock"
outside = "net_memif1,role=server,socket=$RUN/outside.sock"

[stats]
interval_ms = 1000

[control]
node = "demo"
policy_file = "$PWD/config/policy.example.json"
state_dir = "$RUN/state"
metrics_listen = "$METRICS"
TOML

echo "demo: rampart enforcing config/policy.example.json between two memif ports"
: >"$RUN/rampart.log"
# shellcheck disable=SC2046
"$RAMPART" --config "$RUN/rampart.toml" \
  -- -l 0,1 --no-pci --log-level=lib.eal:error $(scripts/eal-mem.sh rampart-demo) >"$RUN/rampart.log" 2>&1 &
APP_PID=$!
tail -n +1 -f --pid="$APP_PID" "$RUN/rampart.log" | grep --line-buffered -v "rule hit" &
for _ in $(seq 300); do grep -q "rampart: forwarding" "$RUN/rampart.log" && break; sleep 0.1; done
grep -q "rampart: forwarding" "$RUN/rampart.log" || { echo "demo: rampart did not start"; exit 1; }

echo "demo: pktgen sends the mix in config/pktgen-demo.toml (allowed, dropped and rejected streams)"
# shellcheck disable=SC2046
"$PKTGEN" --tx-port "net_memif0,role=client,socket=$RUN/inside.sock" \
  --rx-port "net_memif1,role=client,socket=$RUN/outside.sock" \
  --config config/pktgen-demo.toml \
  --eal "-l 0 --no-pci --log-level=lib.eal:error $(scripts/eal-mem.sh pktgen-demo)"

echo "demo: from the metrics endpoint (http://$METRICS/metrics):"
curl -s --max-time 5 "http://$METRICS/metrics" \
  | grep -E '^rampart_(packets_total|port_drops_total.*reason="(policy|no_flow|conntrack)"|policy_generation|conntrack_flows|monitor_hits_total|rule_logs_total|rule_hits_total)' \
  | grep -v ' 0$' | sed 's/^/  /' || echo "  (metrics endpoint not reachable)"
echo "demo: rule-hit log records (first 5):"
grep "rule hit" "$RUN/rampart.log" | head -5 | sed 's/^/  /' || true

kill -TERM "$APP_PID"
wait "$APP_PID" || { echo "demo: rampart failed"; exit 1; }
APP_PID=""
sleep 0.3
echo "demo: done"
