#!/bin/bash
# Makes the 6.1 LTS captures (corpus/captures/k61-*.trace.zst) with `mmreplay record` inside a
# qemu guest running Debian 12's kernel (corpus/guest/run-guest). Run on the host, as root:
#
#   corpus/guest/capture-61.sh NAME... | all
#
# NAME: reclaim-mglru reclaim-classic threads-shootdown compaction hugetlb-fork, and (not in
# `all`) hotset-mglru hotset-classic compact-written.
# Every capture carries `--probe ipi` (flush_tlb_func run on a CPU other than its initiator,
# tlb_remove_table_smp_sync): 6.1 logs IPIs only where they land, unattributed, so these
# kprobes count the TLB shootdown and table-sync calls received; the reclaim ones also
# `--probe rmap`.
# MMREPLAY: a release build of mmreplay (default: <repo>/target/release/mmreplay; not under
# /tmp, which the guest replaces with its own); the guest
# runs this machine's binaries, so build it (and corpus/workloads) here first.
# The guest compresses with a low zstd level (-19 takes minutes under emulation); the host then
# recompresses with -19 (same text; the sidecar's `zstd_level` says what the guest used).
# Prints, per capture, the guest's time for the whole guest-side script and the host's wall
# time for the whole run (boot included).
#
# Inside the guest this script runs again as `capture-61.sh --in-guest NAME` (from /out).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
M=${MMREPLAY:-$repo/target/release/mmreplay}
B=$repo/corpus/workloads/bin
BUF=${BUF:-131072}   # per-CPU ring buffer, KiB: nothing may be lost
GUEST_LEVEL=3

# --- guest side --------------------------------------------------------------------------------
rec() {
	local name=$1; shift
	"$M" record --buffer-kb "$BUF" --zstd-level "$GUEST_LEVEL" -o "/out/k61-$name.trace.zst" "$@"
}

# 96 MiB written twice in a 32 MiB memory cgroup (v2) with swap; MGLRU on or off.
reclaim() {
	local name=$1 lru_gen=$2
	echo "$lru_gen" > /sys/kernel/mm/lru_gen/enabled
	# cgroup v2 has no per-group swappiness: the global value applies (mem_cgroup_swappiness).
	echo 100 > /proc/sys/vm/swappiness
	echo +memory > /sys/fs/cgroup/cgroup.subtree_control
	local g=/sys/fs/cgroup/mmreplay-reclaim
	mkdir -p $g
	echo $((32 << 20)) > $g/memory.max
	# Only the workload joins the group (the recorder's buffers would not fit the limit).
	rec "$name" --probe rmap --probe ipi -- sh -c "echo \$\$ > $g/cgroup.procs && exec $B/anon_reclaim 96 2"
	rmdir $g
}

# A hot set kept in use while a cold region streams through a 32 MiB memory cgroup with swap,
# with `--access`: the recorder clears the workload's soft-dirty bits every 500 ms, so each
# write of a hot page between faults shows as one write-protect fault per interval.
hotset() {
	local name=$1 lru_gen=$2
	echo "$lru_gen" > /sys/kernel/mm/lru_gen/enabled
	echo 100 > /proc/sys/vm/swappiness
	echo +memory > /sys/fs/cgroup/cgroup.subtree_control
	local g=/sys/fs/cgroup/mmreplay-hotset
	mkdir -p $g
	echo $((32 << 20)) > $g/memory.max
	rec "$name" --probe rmap --access --access-interval-ms 500 -- \
		sh -c "echo \$\$ > $g/cgroup.procs && exec $B/anon_hotset 4 64 200"
	rmdir $g
}

in_guest() {
	cat /proc/version
	case $1 in
	reclaim-mglru) reclaim reclaim-mglru y ;;
	reclaim-classic) reclaim reclaim-classic n ;;
	hotset-mglru) hotset hotset-mglru y ;;
	hotset-classic) hotset hotset-classic n ;;
	threads-shootdown) rec threads-shootdown --probe ipi -- "$B/threads_shootdown" 300 ;;
	compaction)
		# As on the host (corpus/README.md (b)): free pages scattered in used pageblocks.
		sync; echo 3 > /proc/sys/vm/drop_caches
		rec compaction --probe ipi -- "$B/compact_frag" 32 1 ;;
	compact-written)
		# A region written continuously while compaction migrates it (2e3468778dbe's case):
		# 128 MiB in a 384 MiB guest, so the region lies on both sides of the point where the
		# migrate and free scanners meet (in a 2 GiB guest or on the host almost none of it
		# moves). The ring buffers are smaller for the same reason; nothing is lost.
		sync; echo 3 > /proc/sys/vm/drop_caches
		BUF=32768 rec compact-written --probe ipi -- "$B/compact_written" 128 2 300 64 ;;
	hugetlb-fork)
		# 1 GiB of 2 MiB pages: PMD sharing needs a whole PUD-aligned 1 GiB range.
		echo 520 > /proc/sys/vm/nr_hugepages
		grep -E 'HugePages_(Total|Free)' /proc/meminfo
		rec hugetlb-fork --probe ipi -- "$B/hugetlb_fork" 3 1024 ;;
	*) echo "capture-61: unknown capture $1" >&2; exit 2 ;;
	esac
}

if [ "${1:-}" = --in-guest ]; then
	in_guest "$2"
	exit
fi

# --- host side ---------------------------------------------------------------------------------
[ -x "$M" ] || { echo "capture-61: no mmreplay at $M (cargo build --release)" >&2; exit 2; }
make -s -C "$repo/corpus/workloads"
caps=${CAPS:-$repo/corpus/captures}   # CAPS: write the captures elsewhere (to compare first)
[ "${1:-}" = all ] && set -- reclaim-mglru reclaim-classic threads-shootdown compaction hugetlb-fork
for name in "$@"; do
	mem=2048 swap=0
	case $name in
	reclaim-* | hotset-*) swap=256 ;;
	hugetlb-fork) mem=2560 ;;
	compact-written) mem=384 ;;
	esac
	out=$(mktemp -d "/tmp/k61-$name.XXXXXX")
	t0=$(date +%s)
	"$here/run-guest" --mem $mem --cpus 2 --swap $swap --out "$out" -- \
		bash "$here/capture-61.sh" --in-guest "$name"
	t1=$(date +%s)
	zstd -qdc "$out/k61-$name.trace.zst" | zstd -q -19 -o "$caps/k61-$name.trace.zst.tmp"
	mv "$caps/k61-$name.trace.zst.tmp" "$caps/k61-$name.trace.zst"
	cp "$out/k61-$name.trace.zst.meta.json" "$caps/"
	# `--access` captures: the soft-dirty clear times (`mmreplay::access`).
	if [ -f "$out/k61-$name.trace.zst.access.json" ]; then
		cp "$out/k61-$name.trace.zst.access.json" "$caps/"
	fi
	echo "capture-61: k61-$name: guest script $(cat "$out/.guest-time") s (guest clock), host wall $((t1 - t0)) s," \
		"$(stat -c %s "$caps/k61-$name.trace.zst") bytes"
	rm -rf "$out"
done
