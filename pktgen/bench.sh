#!/usr/bin/env bash
# pktgen benchmarks, side by side in one run (see the pktgen section of BENCHMARKS.md):
#  1. TX ceiling on one core: pktgen sending to net_null (receiving on an idle net_ring)
#     next to dpdk-testpmd --forward-mode=txonly on net_null, 64-byte frames;
#  2. pktgen on two memif ports joined to each other in its own process (every frame sent is
#     received by the same thread): Mpps and latency at max rate for 1 flow, 10K flows, IMIX.
# Usage: pktgen/bench.sh [seconds per run]   (PKTGEN=path/to/pktgen to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
TARGET=${CARGO_TARGET_DIR:-target}
if [[ -z "${PKTGEN:-}" ]]; then
  cargo build --release -q -p rampart-pktgen
  PKTGEN=$TARGET/release/pktgen
fi
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [[ ${free:-0} -ge 256 ]]; then MEM=(--in-memory); else MEM=(--no-huge -m 512); fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

pg() { "$PKTGEN" --eal "-l 0 --no-pci ${MEM[*]} --file-prefix=pgb$$ --log-level=lib.eal:error" -q --json "$@" 2>/dev/null | tail -1; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print($1)"; }

echo "## TX ceiling, 64 B, one core, ${SECS}s each (testpmd: last 1-s stats period)"
tpmd() {
  timeout -s INT $((SECS + 3)) dpdk-testpmd -l 0,1 --no-pci "${MEM[@]}" --file-prefix=tpb$$ --vdev net_null0 --log-level=lib.eal:error -- \
      --forward-mode=txonly --txpkts=60 --auto-start --stats-period=1 --nb-cores=1 "$@" 2>/dev/null \
    | awk '/Tx-pps:/ {v=$2} END {printf "%.2f", v/1e6}' || true
}
for round in 1 2 3; do
  p1=$(pg --tx-port net_null0 --rx-port net_ring0 --duration "$SECS" --flows 1 | field 'round(d["total"]["tx_pps"]/1e6,2)')
  t1=$(tpmd)
  p2=$(pg --tx-port net_null0 --rx-port net_ring0 --duration "$SECS" --flows 10000 | field 'round(d["total"]["tx_pps"]/1e6,2)')
  t2=$(tpmd --txonly-multi-flow)
  echo "round $round: 1 flow: pktgen $p1 Mpps, testpmd txonly $t1 Mpps | many flows: pktgen (10K flows) $p2 Mpps, testpmd txonly-multi-flow $t2 Mpps"
done

echo "## memif loopback at max rate, ${SECS}s each"
for spec in "--flows 1" "--flows 10000" "--flows 10000 --size imix"; do
  # shellcheck disable=SC2086
  pg --tx-port "net_memif0,role=server,socket=$tmp/m.sock,id=0" --rx-port "net_memif1,role=client,socket=$tmp/m.sock,id=0" \
     --duration "$SECS" $spec \
    | field '"'"$spec"': %.2f Mpps tx, %.2f Mpps rx, loss %.4f%%, p50 %.1f us, p99 %.1f us, p99.9 %.1f us" % (d["total"]["tx_pps"]/1e6, d["total"]["rx_pps"]/1e6, d["total"]["loss_pct"], d["total"]["latency"]["p50_ns"]/1e3, d["total"]["latency"]["p99_ns"]/1e3, d["total"]["latency"]["p999_ns"]/1e3)'
done
