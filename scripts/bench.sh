#!/usr/bin/env bash
# `make bench`: benchmark sections, each measured side by side in one run and written to its own
# `##` section of BENCHMARKS.md. Usage: scripts/bench.sh [section ...]   (default: all)
# Sections: forwarding, instructions, appliance, scaling (this script); parser+conntrack
# (scripts/bench-wire-flow.sh), classifier (scripts/bench-classify.sh), pipeline
# (cargo bench -p rampart-dataplane --bench pipeline), control (publish→enforced latency).
# Add a section by defining bench_<name> and listing it in SECTIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

TARGET=${CARGO_TARGET_DIR:-target}
RAMPART=${RAMPART:-$TARGET/release/rampart}
PKTGEN=${PKTGEN:-$TARGET/release/pktgen}
SECTIONS=(wire_flow classifier forwarding pipeline instructions appliance scaling)
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

# Parser vs etherparse and conntrack lookups/inserts: the "Parser" and "Conntrack" sections.
bench_wire_flow() {
  scripts/bench-wire-flow.sh
}

# Our classifier vs rte_acl (dpdk-test-acl) on the vendored ClassBench sets: "Classifier".
bench_classifier() {
  local body load table
  body=$(mktemp)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "bench: classifier vs dpdk-test-acl (ClassBench acl1/fw1, interleaved rounds)"
  table=$(RAMPARTCTL=${RAMPARTCTL:-$TARGET/release/rampartctl} scripts/bench-classify.sh)
  {
    echo "Rampart's classifier (\`rampartctl bench classify\`) next to DPDK $(pkg-config --modversion libdpdk)"
    echo "\`rte_acl\` (\`dpdk-test-acl\`, its best algorithm on this CPU) on the vendored ClassBench sets,"
    echo "interleaved in one run, best of ${ROUNDS:-3} rounds per side, one core each; every Rampart answer is"
    echo "checked against the linear first-match reference (\`mismatches\`). Targets: lookup ratio ≥ 1 at"
    echo "1K and 10K rules; build ratio ≤ 0.1 at 10K rules."
    echo
    echo "$table"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) vCPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average before the run: $load."
    echo "Command: \`scripts/bench.sh classifier\` (= \`scripts/bench-classify.sh\` written here)."
  } >"$body"
  bench_write_section "## Classifier" "$body"
  rm -f "$body"
}

# Raw forwarding vs the full firewall pipeline on one core, through the real worker loop on
# net_null and net_ring, plus `decide` alone and under RCU swaps: "Pipeline".
bench_pipeline() {
  local body load table
  body=$(mktemp)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "bench: pipeline (raw forward vs firewall, one core; ~3 min)"
  table=$(cargo bench -q -p rampart-dataplane --bench pipeline 2>/dev/null | grep '^|')
  {
    echo "Raw forwarding and the full firewall pipeline (parse → conntrack → classify → verdict, plus"
    echo "the end-of-poll tick) side by side in one run on one core, fed by the same closed-loop source"
    echo "of 64-byte frames of N flows (ClassBench acl1 headers; policy: the acl1 rules, default allow)."
    echo "Worker-loop rows run the real poll loop on net_null (per-packet mbuf alloc/free like a NIC"
    echo "driver) and net_ring; \"decide\" rows run the stage alone, and under RCU swaps every 1, 10 and"
    echo "100 ms with every flow revalidated after each swap. Packets per CPU-second of the worker"
    echo "thread, best of 3 interleaved rounds (see dataplane/worker/benches/pipeline.rs)."
    echo "Targets: established ≥ 35 % of raw at 10K flows, ≥ 15 % at 1M; new flows ≥ 5 Mpps at 10K"
    echo "rules; throughput during swaps ≥ 95 % of without."
    echo
    echo "$table"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) vCPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average before the run: $load."
    echo "Command: \`cargo bench -p rampart-dataplane --bench pipeline\` (\`scripts/bench.sh pipeline\`)."
  } >"$body"
  bench_write_section "## Pipeline" "$body"
  rm -f "$body"
}

# A policy for the appliance benchmark: BENCH_RULES-1 drop rules on addresses the traffic does
# not use (so the classifier has a real tree to walk), then an allow for pktgen's streams.
# The pipeline's worker-loop rows again, as instructions per packet under callgrind
# (scripts/bench-instructions.sh): the same ratios without the host's noise.
bench_instructions() {
  local body table
  body=$(mktemp)
  echo "bench: instructions per packet (worker loop under callgrind; ~1 min)"
  table=$(scripts/bench-instructions.sh)
  {
    echo "The \"Pipeline\" section's worker-loop rows on net_null, counted instead of timed: instructions"
    echo "per packet under callgrind (one dump per measurement, divided by its packets; median of 3"
    echo "rounds, which agree to 0.1). Deterministic, so a change's effect shows exactly, where the timed"
    echo "ratios swing by ±10% between runs on a shared host. Instructions are not time (the raw path"
    echo "waits on memory more), but the firewall's established path is instruction-bound and the"
    echo "ratio of instructions tracked the timed ratio within a few points (BENCHMARKS \"Session 10\")."
    echo
    echo "$table"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); valgrind $(valgrind --version | sed 's/valgrind-//')."
    echo "Command: \`scripts/bench-instructions.sh\` (\`scripts/bench.sh instructions\`)."
  } >"$body"
  bench_write_section "## Instructions per packet" "$body"
  rm -f "$body"
}

bench_policy() {
  local n=$1
  {
    echo '{ "generation": 1, "default_action": "drop", "rules": ['
    for i in $(seq 1 $((n - 1))); do
      echo "  { \"id\": $i, \"protocol\": \"udp\", \"source\": { \"addresses\": [\"192.168.$((i / 250)).$((i % 250))/32\"] }, \"destination\": { \"ports\": [$((1000 + i % 5000))] }, \"action\": \"drop\" },"
    done
    echo "  { \"id\": $n, \"name\": \"bench\", \"protocol\": \"udp\", \"source\": { \"addresses\": [\"10.0.0.0/8\"] }, \"action\": \"allow\" }"
    echo '] }'
  }
}

# pktgen <-> memif <-> appliance in two processes: pktgen on lcore 0, one appliance worker on
# lcore 1. For the raw forwarder and the firewall (BENCH_RULES rules, BENCH_FLOWS UDP flows,
# 64 B): an RFC 2544 search for the highest rate with loss <= 0.1 %, and the latency
# percentiles of the best trial (timestamps carried in the payload).
bench_appliance() {
  [ -x "$PKTGEN" ] || { echo "bench: $PKTGEN not built (run make bench)"; return 1; }
  local out body load rules=${BENCH_RULES:-1000} flows=${BENCH_FLOWS:-10000}
  local max_rate=${BENCH_MAX_RATE:-15000000} lat_rate=${BENCH_LAT_RATE:-500000}
  out=$(mktemp -d /tmp/rampart-bench.XXXXXX)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  bench_policy "$rules" >"$out/policy.json"
  local pg_cmd="pktgen --tx-port net_memif0,role=client,socket=\$RUN/in.sock --rx-port net_memif1,role=client,socket=\$RUN/out.sock --flows $flows --size 64 --json --eal '-l 0 --no-pci' \\
    --search --loss 0.1 --rate $max_rate --duration 2 --max-trials 9    # throughput
    # then the same with: --rate $lat_rate --duration 4                  # latency"
  local rows=() mode app_pid
  appliance_up() { # mode run
    : >"$out/$1.$2.log"; rm -f "$out"/*.sock
    # shellcheck disable=SC2046
    "$RAMPART" --config "$out/$1.toml" -- -l 0,1 --no-pci --log-level=lib.eal:error \
      $(scripts/eal-mem.sh "rb-$1") >"$out/$1.$2.log" 2>&1 &
    app_pid=$!
    for _ in $(seq 300); do grep -q "rampart: forwarding" "$out/$1.$2.log" && return 0; sleep 0.1; done
    echo "bench: rampart did not start ($1)"; cat "$out/$1.$2.log"; kill "$app_pid" 2>/dev/null; return 1
  }
  appliance_down() { # mode run: stop it and insist it stopped cleanly
    kill -TERM "$app_pid" 2>/dev/null
    if ! wait "$app_pid"; then
      echo "bench: rampart ($1, $2) did not exit cleanly:"; tail -20 "$out/$1.$2.log"; return 1
    fi
  }
  for mode in forward firewall; do
    {
      echo "[[pairs]]"
      echo "inside = \"net_memif0,role=server,socket=$out/in.sock\""
      echo "outside = \"net_memif1,role=server,socket=$out/out.sock\""
      echo "[stats]"
      echo "interval_ms = 0"
      if [ "$mode" = firewall ]; then
        echo "[control]"
        echo "node = \"bench\""
        echo "policy_file = \"$out/policy.json\""
        echo "state_dir = \"$out/state\""
        echo "[firewall]"
        echo "flow_capacity = $((flows * 4))"
      fi
    } >"$out/$mode.toml"
    local pg=("$PKTGEN" --tx-port "net_memif0,role=client,socket=$out/in.sock"
      --rx-port "net_memif1,role=client,socket=$out/out.sock" --flows "$flows" --size 64 -q --json)
    local eal_pg="-l 0 --no-pci --log-level=lib.eal:error"
    # 1. the highest rate with loss <= 0.1 %; 2. latency at a fixed rate both modes sustain.
    # A fresh appliance for each pktgen run: every run starts from an empty flow table.
    echo "bench: appliance ($mode): RFC 2544 search, then latency at $lat_rate pps"
    appliance_up "$mode" search || return 1
    # shellcheck disable=SC2046
    "${pg[@]}" --search --loss 0.1 --rate "$max_rate" --duration 2 --max-trials 9 \
      --eal "$eal_pg $(scripts/eal-mem.sh "pg-$mode")" >"$out/$mode.json" 2>"$out/$mode.pktgen.log" || true
    appliance_down "$mode" search || return 1
    appliance_up "$mode" latency || return 1
    # shellcheck disable=SC2046
    "${pg[@]}" --rate "$lat_rate" --duration 4 \
      --eal "$eal_pg $(scripts/eal-mem.sh "pl-$mode")" >"$out/$mode.lat.json" 2>>"$out/$mode.pktgen.log" || true
    appliance_down "$mode" latency || return 1
    local row
    row=$(python3 - "$out/$mode.json" "$out/$mode.lat.json" <<'PY'
import json, sys
def last(path):
    return json.loads(open(path).read().strip().splitlines()[-1])
try:
    s, l = last(sys.argv[1]), last(sys.argv[2])
except Exception:
    print("ERR"); sys.exit(0)
best = s["best"]
# What was received at the best passing rate (pktgen may offer less than the rate asked for).
mpps = "none" if best is None else "%.3f" % (best["total"]["rx_pps"] / 1e6)
loss = "-" if best is None else "%.4f" % best["total"]["loss_pct"]
lat = l["total"]["latency"]
print("%s %s %.4f %.1f %.1f %.1f %.1f" % (mpps, loss, l["total"]["loss_pct"],
      lat["p50_ns"] / 1e3, lat["p99_ns"] / 1e3, lat["p999_ns"] / 1e3, lat["max_ns"] / 1e3))
PY
)
    [ "$row" = ERR ] && { echo "bench: pktgen gave no result ($mode)"; cat "$out/$mode.pktgen.log"; return 1; }
    echo "bench: appliance ($mode): $row"
    rows+=("$mode $row")
  done
  local fwd_mpps=0 r
  for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    set -- $r
    if [ "$1" = forward ] && [ "$2" != none ]; then fwd_mpps=$2; fi
  done
  body="$out/body.md"
  {
    echo "pktgen and the appliance in two processes joined by two memif ports (the benchmark path of"
    echo "ARCHITECTURE.md): pktgen on lcore 0 sends $flows UDP flows of 64-byte frames and receives what the"
    echo "appliance forwards; the appliance runs one worker on lcore 1. Throughput: an RFC 2544 search"
    echo "(2-s trials, up to 9, loss ≤ 0.1 %, ceiling $max_rate pps), reported as the rate received in the best"
    echo "passing trial. Latency: a separate 4-s run at $lat_rate pps (below both ceilings, so queues stay"
    echo "short), from the payload timestamps (pktgen TX → appliance → pktgen RX)."
    echo "\"forward\" is the raw forwarder (no \`[control]\`), \"firewall\" the full pipeline with a policy of"
    echo "$rules rules ($((rules - 1)) non-matching drops, then the allow) — same run, same pktgen."
    echo
    echo "| appliance | throughput (Mpps, loss ≤ 0.1 %) | vs forward | loss at $lat_rate pps | p50 µs | p99 µs | p99.9 µs | max µs |"
    echo "|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
      # shellcheck disable=SC2086
      set -- $r
      echo "| $1 | $2 | $(awk -v a="$2" -v b="$fwd_mpps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') | $4 % | $5 | $6 | $7 | $8 |"
    done
    echo
    echo "On a 2-vCPU host pktgen (one core for TX, RX and timestamps) may be what limits the forward"
    echo "row, so the ratio says how much of that ceiling the firewall keeps; the firewall's own"
    echo "CPU cost is in the \"Pipeline\" section (closed loop, no generator). The p99.9/max tails of"
    echo "milliseconds are preemptions: pktgen shares lcore 0 with the appliance's main and control"
    echo "threads."
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) vCPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average before the run: $load."
    echo "Command: \`scripts/bench.sh appliance\` (part of \`make bench\`; BENCH_RULES, BENCH_FLOWS, BENCH_MAX_RATE"
    echo "override the defaults). Each run is the appliance with the generated config plus:"
    echo
    echo '```'
    echo "$pg_cmd"
    echo '```'
  } >"$body"
  bench_write_section "## Appliance (pktgen ↔ memif ↔ appliance)" "$body"
  rm -rf "$out"
}

# Scaling with worker cores: the raw forwarder over net_null with 1..N workers (N = vCPUs - 1,
# or BENCH_WORKERS). On this 2-vCPU host only one worker fits next to the main lcore.
bench_scaling() {
  local out body load n workers
  out=$(mktemp -d)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  n=$(( $(nproc) - 1 ))
  workers=${BENCH_WORKERS:-$(seq -s' ' 1 "$n")}
  local rows=()
  for w in $workers; do
    local lcores; lcores=$(seq -s, 0 "$w")
    local mem; mem=$(scripts/eal-mem.sh "rb-scale$w")
    echo "bench: scaling: $w worker(s)"
    # shellcheck disable=SC2086
    "$RAMPART" --inside net_null0 --outside net_null1 --workers "$w" --duration "$BENCH_SECS" \
      --stats-interval-ms 1000 -- -l "$lcores" --no-pci $mem >"$out/w$w.log" 2>&1 || { cat "$out/w$w.log"; return 1; }
    local m
    m=$(awk '/^\[/ { n++; if (n <= 2) next; s = 0
           for (i = 1; i <= NF; i++) if ($i == "tx") { v = $(i+1); k = 1
             if (v ~ /Mpps$/) k = 1e6; else if (v ~ /Kpps$/) k = 1e3
             gsub(/[A-Za-z]/, "", v); s += v * k }
           printf "%.4f\n", s / 1e6 }' "$out/w$w.log" | median)
    rows+=("$w $m")
  done
  body="$out/body.md"
  {
    echo "The raw forwarder over net_null with one worker per lcore (RSS spreads queues; each worker"
    echo "owns one RX/TX queue per port). Mpps = TX of both ports, median of 1-s samples after 2 s."
    echo
    echo "| workers | Mpps | per worker |"
    echo "|---|---|---|"
    local r
    for r in "${rows[@]}"; do
      # shellcheck disable=SC2086
      set -- $r
      echo "| $1 | $(printf '%.2f' "$2") | $(awk -v m="$2" -v w="$1" 'BEGIN { printf "%.2f", m / w }') |"
    done
    echo
    echo "This host has $(nproc) vCPUs: lcore 0 is the main lcore (stats, control thread), so $n worker(s)"
    echo "fit, and the firewall's scaling cannot be shown here beyond one core. Workers share nothing on"
    echo "the packet path (per-core flow tables, counters and mbuf caches; ARCHITECTURE.md decision 1),"
    echo "so the expectation on a bigger host is linear until memory bandwidth or the NIC saturates. To"
    echo "measure it there: \`BENCH_WORKERS=\"1 2 4 8\" scripts/bench.sh scaling\` (net_null), and for the"
    echo "firewall on a NIC with symmetric RSS, run \`rampart --workers N\` with pktgen on another host."
    echo
    echo "Measured $(date -u +%Y-%m-%d), load average before the run: $load. Command: \`scripts/bench.sh scaling\`."
  } >"$body"
  bench_write_section "## Scaling" "$body"
  rm -rf "$out"
}

want=("$@")
[ "${#want[@]}" -gt 0 ] || want=("${SECTIONS[@]}")
[ -x "$RAMPART" ] || { echo "bench: $RAMPART not built (run make bench)"; exit 1; }
for s in "${want[@]}"; do
  "bench_$s"
done
echo "bench: results written to BENCHMARKS.md"
