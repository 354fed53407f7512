#!/usr/bin/env bash
# Classifier benchmark: rampartctl bench classify next to DPDK's dpdk-test-acl (rte_acl) on the
# vendored ClassBench sets, interleaved in one run, best of ROUNDS for each side.
# Prints a markdown table for BENCHMARKS.md ("## Classifier").
#
#   scripts/bench-classify.sh                 # builds rampartctl (release) first
#   RAMPARTCTL=path/to/rampartctl ROUNDS=5 scripts/bench-classify.sh
#
# Needs dpdk-test-acl (package dpdk) and hugepages or not (runs with --no-huge).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=tests/data/classbench
ROUNDS=${ROUNDS:-3}
SETS=${SETS:-"acl1_1k fw1_1k acl1_10k"}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [[ -z "${RAMPARTCTL:-}" ]]; then
    cargo build --release -q -p rampart-control --bin rampartctl
    RAMPARTCTL=${CARGO_TARGET_DIR:-target}/release/rampartctl
fi

# rte_acl's best algorithm on this CPU.
if grep -q avx512bw /proc/cpuinfo; then
    ALG=avx512x32; SIMD=(--force-max-simd-bitwidth=512)
elif grep -q avx2 /proc/cpuinfo; then
    ALG=avx2; SIMD=()
else
    ALG=sse; SIMD=()
fi
EAL=(-l 1 --no-pci --no-huge -m 1024 --file-prefix="rampart-bench-$$" "${SIMD[@]}")

acl() { # rules trace tracenum iter -> stdout of dpdk-test-acl
    dpdk-test-acl "${EAL[@]}" --log-level=lib.acl:debug -- --rulesf="$1" --tracef="$2" \
        --rulenum=65536 --tracenum="$3" --iter="$4" --verbose=0 --alg="$ALG" 2>&1
}

now() { date +%s.%N; }

echo "| set | rules | packets | Rampart Mpps | rte_acl ($ALG) Mpps | lookup ratio | Rampart build ms | rte_acl build ms | build ratio | Rampart memory | rte_acl memory | mismatches |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for set in $SETS; do
    rules=$DATA/$set.rules
    gunzip -c "$DATA/$set.trace.gz" > "$TMP/$set.trace"
    n=$(wc -l < "$TMP/$set.trace")
    head -1 "$rules" > "$TMP/one.rules"
    best_r=0 best_a=0 build_r=1e9 one_a=1e9 full_a=1e9 mem_r=0 mem_a=0 mism=0 nrules=0
    for _ in $(seq "$ROUNDS"); do
        j=$("$RAMPARTCTL" bench classify --rules "$rules" --trace "$DATA/$set.trace.gz" --json --min-time-ms 1500)
        read -r nrules mpps bms mem mm < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["rules"], d["mpps"], d["build_ms"], d["memory_bytes"], d["mismatches"])' "$j")
        best_r=$(python3 -c "print(max($best_r, $mpps))")
        build_r=$(python3 -c "print(min($build_r, $bms))")
        mem_r=$mem; mism=$((mism + mm))
        # rte_acl lookup: pkt/sec over ~1.5 s of iterations.
        out=$(acl "$rules" "$TMP/$set.trace" "$n" $(( 150000000 / n / 10 + 1 )))
        pps=$(sed -n 's/.* \([0-9.]*\) pkt\/sec.*/\1/p' <<<"$out" | tail -1)
        mem_a=$(sed -n 's/^total: \([0-9]*\) bytes.*/\1/p' <<<"$out" | head -1)
        best_a=$(python3 -c "print(max($best_a, $pps / 1e6))")
        # rte_acl build: wall time with the full rule file minus with one rule (same trace of 1
        # packet), each the minimum over the rounds (a per-round difference goes negative when
        # the one-rule run is the one a busy machine slows down).
        t0=$(now); acl "$TMP/one.rules" "$TMP/$set.trace" 1 1 > /dev/null; t1=$(now)
        acl "$rules" "$TMP/$set.trace" 1 1 > /dev/null; t2=$(now)
        one_a=$(python3 -c "print(min($one_a, $t1 - $t0))")
        full_a=$(python3 -c "print(min($full_a, $t2 - $t1))")
    done
    build_a=$(python3 -c "print(($full_a - $one_a) * 1e3)")
    python3 - "$set" "$nrules" "$n" "$best_r" "$best_a" "$build_r" "$build_a" "$mem_r" "$mem_a" "$mism" <<'PY'
import sys
s, rules, n, r, a, br, ba, mr, ma, mm = sys.argv[1:]
r, a, br, ba = float(r), float(a), float(br), float(ba)
mib = lambda b: f"{int(b) / 2**20:.2f} MiB"
print(f"| {s} | {rules} | {n} | {r:.2f} | {a:.2f} | {r / a:.2f}x | {br:.1f} | {ba:.1f} | {br / ba:.3f} | {mib(mr)} | {mib(ma)} | {mm} |")
PY
done
echo
echo "Rampart: \`$RAMPARTCTL bench classify --rules $DATA/<set>.rules --trace $DATA/<set>.trace.gz --json --min-time-ms 1500\` (best of $ROUNDS)."
echo "rte_acl: \`dpdk-test-acl ${EAL[*]} -- --rulesf=<rules> --tracef=<trace> --rulenum=65536 --tracenum=<lines> --iter=<n> --verbose=0 --alg=$ALG\` (best of $ROUNDS);"
echo "its build time = wall time with the full rule file minus with a one-rule file (--tracenum=1 --iter=1), each the min of $ROUNDS."
