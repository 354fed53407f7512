#!/usr/bin/env bash
# Parser and conntrack micro-benchmarks (one core, no DPDK) → the "## Parser" and
# "## Conntrack" sections of BENCHMARKS.md, each measured side by side in one run.
#   scripts/bench-wire-flow.sh            (about 3 minutes, most of it building with LTO)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

context() {
  echo "Machine: $(nproc) vCPU $(lscpu | sed -n 's/^Model name: *//p'), load average at the run: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared). $(date -u +%Y-%m-%d)."
}

body=$(mktemp)
trap 'rm -f "$body"' EXIT

out=$(cargo bench -q -p rampart-wire --bench parse 2>/dev/null)
{
  echo "\`rampart_wire::parse\` / \`parse_into\` next to etherparse 0.21 \`SlicedPacket::from_ethernet\` on the"
  echo "same frames (etherparse parses VXLAN frames twice, outer then inner, to do the same work)."
  echo "ns/packet of thread CPU time, best of 7 interleaved rounds; ratios > 1 mean rampart is faster."
  echo
  echo '```sh'
  echo 'cargo bench -p rampart-wire --bench parse      # or: scripts/bench-wire-flow.sh'
  echo '```'
  echo
  echo "$out"
  echo
  context
} >"$body"
bench_write_section "## Parser" "$body"

out=$(cargo bench -q -p rampart-flow --bench conntrack 2>/dev/null)
{
  echo "One \`FlowTable\` on one core, all flows established (full handshakes), lookups of a random"
  echo "64K-key sample of them replayed 32 times; millions of operations per second of thread CPU"
  echo "time, best of 3 rounds. \"insert\" is the miss path (insert + track the SYN). \"no prefetch\" runs"
  echo "the same staged burst code with the prefetches left out. Bytes/flow = (records + counters +"
  echo "index) / capacity."
  echo
  echo '```sh'
  echo 'cargo bench -p rampart-flow --bench conntrack   # SIZES=10000,1000000 to choose; or: scripts/bench-wire-flow.sh'
  echo '```'
  echo
  echo "$out"
  echo
  context
  echo
  echo "Notes. Prefetching is what makes the burst path pay at 1M+ flows (compare the two burst"
  echo "columns): \`core::arch::x86_64::_mm_prefetch\` still needs \`unsafe\` on rustc 1.95 even with SSE"
  echo "in the baseline (E0133), so rampart-flow prefetches through the 120-line \`mem_prefetch\` crate;"
  echo "\`lookup_burst_with\` accepts the worker's own prefetch instead. Each lookup touches one 64-byte"
  echo "bucket and one 64-byte record (counters live apart and are prefetched for the \`track\` that"
  echo "follows a hit). The table is plain heap memory in 4 KiB pages (THP is madvise-only here), so at"
  echo "1M+ flows TLB misses add to every lookup; hugepage backing would be the next step. On this"
  echo "shared 2-vCPU VM repeated runs of the same binary vary by ±40%."
} >"$body"
bench_write_section "## Conntrack" "$body"
echo "bench-wire-flow: sections written to BENCHMARKS.md"
