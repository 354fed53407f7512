# Helpers for benchmark scripts (sourced). Other sections of `make bench` reuse them.

# median of numbers on stdin (one per line)
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# bench_write_section "## Title" FILE_WITH_BODY: replace (or append) the lead text of that `##`
# section of BENCHMARKS.md, up to its first `###` subsection, leaving every other section
# untouched. The subsections (earlier rounds, side-by-side A/B runs with their own commands)
# are the history a new run must not erase.
bench_write_section() {
  local title=$1 body=$2 md=${BENCHMARKS_MD:-BENCHMARKS.md} tmp
  [ -f "$md" ] || printf '# Rampart benchmarks\n\nEvery number below comes with the command that produced it; the machine is noisy, so\ncompare only numbers measured side by side in the same run.\n' >"$md"
  tmp=$(mktemp)
  awk -v title="$title" -v body="$body" '
    function emit() { print title; print ""; while ((getline l < body) > 0) print l; print ""; done = 1 }
    $0 == title { emit(); skip = 1; next }
    skip && /^##+ / { skip = 0 }
    !skip { print }
    END { if (!done) { print ""; emit() } }
  ' "$md" >"$tmp"
  # squeeze runs of blank lines left by the replacement
  cat -s "$tmp" >"$md"
  rm -f "$tmp"
}
