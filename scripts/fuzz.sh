#!/usr/bin/env bash
# Build and run a cargo-fuzz target for a bounded time, starting from the committed seed
# corpus. Exits non-zero if the fuzzer finds a crash (the input lands in fuzz/artifacts/).
#
#   scripts/fuzz.sh [seconds=60] [target=parse]     targets: parse, conntrack
#
# cargo-fuzz needs nightly features; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them.
# New inputs the fuzzer discovers go to a scratch directory, so the committed corpus only
# changes when someone copies interesting inputs over deliberately.
set -euo pipefail

secs="${1:-60}"
target="${2:-parse}"
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
seeds="$root/fuzz/corpus/$target"
mkdir -p "$seeds"

cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
cargo fuzz build "$target"
# First directory: where new inputs are written; second: read-only seeds.
cargo fuzz run "$target" "$scratch" "$seeds" -- \
    -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1
echo "fuzz.sh: $target ran ${secs}s without a crash"
