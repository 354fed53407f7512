#!/usr/bin/env bash
# Print the EAL memory arguments for one DPDK process: hugepages when enough are free and
# hugetlbfs is mounted, else --no-huge (DPDK rejects --no-huge together with --in-memory,
# so that case gets a unique --file-prefix instead).
#   usage: scripts/eal-mem.sh [prefix]
prefix=${1:-rampart-$$}
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo 2>/dev/null)
if [ "${free:-0}" -ge 128 ] && grep -q " hugetlbfs " /proc/mounts && [ -z "${RAMPART_NO_HUGE:-}" ]; then
  echo "--in-memory --file-prefix=$prefix"
else
  echo "--no-huge -m 512 --file-prefix=$prefix"
fi
