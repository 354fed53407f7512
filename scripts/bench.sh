#!/usr/bin/env bash
# `make bench`: benchmark sections, each measured side by side in one run and written to its own
# `##` section of BENCHMARKS.md. Usage: scripts/bench.sh [section ...]   (default: all)
# Sections: forwarding. Add a section by defining bench_<name> and listing it in SECTIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

RAMPART=${RAMPART:-${CARGO_TARGET_DIR:-target}/release/rampart}
SECTIONS=(forwarding)
BENCH_SECS=${BENCH_SECS:-7}      # seconds per run; the first 2 stats samples are skipped
BENCH_ROUNDS=${BENCH_ROUNDS:-2}  # alternating rampart / testpmd rounds

# Raw forwarding on one worker core over net_null (the I/O ceiling): rampart's forwarder vs
# dpdk-testpmd io-forward on the same vdevs, alternating in the same run.
bench_forwarding() {
  command -v dpdk-testpmd >/dev/null || { echo "bench: dpdk-testpmd missing (apt-get install dpdk-dev)"; return 1; }
  local mem r t samples_r=() samples_t=() out body
  out=$(mktemp -d)
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  mem=$(scripts/eal-mem.sh rampart-bench)
  local eal="-l 0,1 --no-pci $mem"
  local cmd_r="$RAMPART --inside net_null0 --outside net_null1 --duration $BENCH_SECS --stats-interval-ms 1000 -- $eal"
  local cmd_t="timeout -s INT $BENCH_SECS dpdk-testpmd $eal --vdev=net_null0 --vdev=net_null1 -- --forward-mode=io --nb-cores=1 --stats-period=1"
  for round in $(seq "$BENCH_ROUNDS"); do
    echo "bench: forwarding round $round/$BENCH_ROUNDS: rampart"
    # shellcheck disable=SC2086
    $cmd_r >"$out/r$round.log" 2>&1 || { cat "$out/r$round.log"; return 1; }
    # forwarded pps = tx of both ports, per stats line: "... in0 rx 1.2Mpps tx 1.2Mpps drop ..."
    awk '/^\[/ { n++; if (n <= 2) next; s = 0
           for (i = 1; i <= NF; i++) if ($i == "tx") { v = $(i+1); m = 1
             if (v ~ /Mpps$/) m = 1e6; else if (v ~ /Kpps$/) m = 1e3
             gsub(/[A-Za-z]/, "", v); s += v * m }
           printf "%.4f\n", s / 1e6 }' "$out/r$round.log" >>"$out/rampart.samples"
    echo "bench: forwarding round $round/$BENCH_ROUNDS: dpdk-testpmd"
    # shellcheck disable=SC2086
    $cmd_t >"$out/t$round.log" 2>&1 || true
    # one "Tx-pps:" line per port per period: sum the two ports of each period
    awk '/Tx-pps:/ { s += $2; k++; if (k % 2 == 0) { n++; if (n > 2) printf "%.4f\n", s / 1e6; s = 0 } }' \
      "$out/t$round.log" >>"$out/testpmd.samples"
  done
  [ -s "$out/rampart.samples" ] || { echo "bench: no rampart samples"; cat "$out"/r*.log; return 1; }
  [ -s "$out/testpmd.samples" ] || { echo "bench: no testpmd samples"; cat "$out"/t*.log; return 1; }
  r=$(median <"$out/rampart.samples")
  t=$(median <"$out/testpmd.samples")
  local ratio; ratio=$(awk -v r="$r" -v t="$t" 'BEGIN { printf "%.2f", (t > 0 ? r / t : 0) }')
  local nr nt; nr=$(wc -l <"$out/rampart.samples"); nt=$(wc -l <"$out/testpmd.samples")
  printf 'bench: rampart %.2f Mpps, testpmd %.2f Mpps, ratio %s\n' "$r" "$t" "$ratio"

  body="$out/body.md"
  {
    echo "Raw forwarding on one worker core, net_null0 <-> net_null1 (64 B frames, burst 32), the I/O"
    echo "ceiling of this machine: rampart's forwarder (\`ForwardAll\` stage, no firewall work) vs DPDK's own"
    echo "\`dpdk-testpmd\` in io-forward mode on the same vdevs, alternating in one run ($BENCH_ROUNDS rounds of"
    echo "${BENCH_SECS} s each, first 2 one-second samples of every run skipped, median of the rest)."
    echo "Forwarded packets per second = TX of both ports."
    echo
    echo "| forwarder | Mpps (median) | samples | ratio to testpmd |"
    echo "|---|---|---|---|"
    printf '| rampart (Rust, rampart-dpdk) | %.2f | %s | %s |\n' "$r" "$nr" "$ratio"
    printf '| dpdk-testpmd io-fwd (C) | %.2f | %s | 1.00 |\n' "$t" "$nt"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) vCPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), DPDK $(pkg-config --modversion libdpdk), EAL memory: \`$mem\`, host load average before the run: $load (other jobs on the same vCPUs make both forwarders slower and the ratio noisier)."
    echo
    echo "Commands (\`make bench\` = \`scripts/bench.sh\`; this section alone: \`scripts/bench.sh forwarding\`):"
    echo
    echo '```'
    echo "$cmd_r"
    echo "$cmd_t"
    echo '```'
  } >"$body"
  bench_write_section "## Forwarding" "$body"
  rm -rf "$out"
}

want=("$@")
[ "${#want[@]}" -gt 0 ] || want=("${SECTIONS[@]}")
[ -x "$RAMPART" ] || { echo "bench: $RAMPART not built (run make bench)"; exit 1; }
for s in "${want[@]}"; do
  "bench_$s"
done
echo "bench: results written to BENCHMARKS.md"
