#!/usr/bin/env bash
# Instructions per packet of the pipeline bench's worker-loop rows (raw forward, raw behind the
# source, firewall), counted by callgrind: a deterministic companion to the timed ratios, which
# swing by ±10% between runs on a shared host. The worker loop on net_null runs under valgrind
# (EAL with --no-huge); callgrind zeroes its counts on entering each measurement and dumps them
# where its poll loop ends (`measured_end` in dataplane/worker/benches/pipeline.rs), and the
# bench's RAMPART_BENCH_TRACE lines give each measurement's packet count, in the same order.
#
# The ratio of instructions is not the ratio of time (the raw path spends more of its time
# waiting on memory), but where the firewall is instruction-bound, as its established path is,
# the two track each other (BENCHMARKS.md "Session 10"); and a change's effect on it is exact.
#
# Usage: scripts/bench-instructions.sh            (acl1_1k and acl1_10k rules, 10K flows)
#        SETS=acl1_10k SIZES=10000,100000 SCENARIOS=established,new scripts/bench-instructions.sh
# Prints a markdown table. Needs valgrind (installed with apt when missing) and root for EAL.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

if ! command -v valgrind >/dev/null; then
  echo "bench-instructions: installing valgrind" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

bin=$(cargo bench -p rampart-dataplane --bench pipeline --no-run 2>&1 |
  sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)
[ -x "$bin" ] || { echo "bench-instructions: no pipeline bench binary" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "bench-instructions: running the worker loop under callgrind (~1 min)" >&2
# The bench finds its ClassBench files relative to the crate, as `cargo bench` runs it.
(cd dataplane/worker &&
  RAMPART_BENCH_TRACE=1 RAMPART_NO_HUGE=1 PAIRS=net_null \
  SETS="${SETS:-acl1_1k,acl1_10k}" SIZES="${SIZES:-10000}" SCENARIOS="${SCENARIOS:-established}" \
  valgrind -q --tool=callgrind --zero-before='*Dpdk*measure*' --dump-before='*measured_end*' \
    --callgrind-out-file="$out/cg" "$bin" --bench --quick --no-decide \
    >"$out/table" 2>"$out/trace")

grep '^measured' "$out/trace" >"$out/runs" || { cat "$out/trace" >&2; exit 1; }
runs=$(wc -l <"$out/runs")
dumps=$(find "$out" -name 'cg.[0-9]*' | wc -l)
if [ "$runs" -ne "$dumps" ]; then
  echo "bench-instructions: $runs measurements but $dumps callgrind dumps" >&2
  exit 1
fi
# One line per measurement: its row, rules, flows, packets and instructions.
for i in $(seq 1 "$runs"); do
  instr=$(awk '/^totals:/ {print $2}' "$out/cg.$i")
  sed -n "${i}p" "$out/runs" | awk -F'\t' -v ins="$instr" -v OFS='\t' '{print $3, $4, $5, $6, ins}'
done >"$out/counted"

# Per row (in first-seen order: name, rules, flows), the median over rounds of instructions
# per packet, and the ratios of the two raw rows to it.
cut -f1-3 "$out/counted" | awk '!seen[$0]++' >"$out/rows"
per_packet() { # the row's line from $out/rows
  awk -F'\t' -v row="$1" '$1 "\t" $2 "\t" $3 == row { print $5 / $4 }' "$out/counted" | median
}
raw=$(per_packet "$(grep -m1 '^raw forward (ForwardAll)' "$out/rows")")
src=$(per_packet "$(grep -m1 '^raw forward behind the source' "$out/rows")")
echo "| net_null row | rules | flows | instructions / packet | raw ÷ row | raw behind the source ÷ row |"
echo "|---|---|---|---|---|---|"
while IFS= read -r row; do
  m=$(per_packet "$row")
  awk -F'\t' -v m="$m" -v raw="$raw" -v src="$src" '{
    printf "| %s | %s | %s | %.1f | %.1f%% | %.1f%% |\n", $1, ($2 == 0 ? "-" : $2), ($3 == 0 ? "-" : $3),
      m, 100 * raw / m, 100 * src / m }' <<<"$row"
done <"$out/rows"
