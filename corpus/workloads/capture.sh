#!/bin/sh
# Makes the captures in corpus/captures with `mmreplay record` (run as root, from anywhere).
# Usage: capture.sh NAME...   (NAME: see the case below; `all` for every one)
# MMREPLAY: path of a release build of mmreplay (default: $CARGO_TARGET_DIR/release/mmreplay).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/../captures" && pwd)
M=${MMREPLAY:-${CARGO_TARGET_DIR:-$here/../../target}/release/mmreplay}
BUF=${BUF:-262144}          # per-CPU ring buffer, KiB: large enough that nothing is lost
LEVEL=${LEVEL:-19}
make -s -C "$here"
B=$here/bin
# The bundled captures are text (`--text`; record's default output is a trace.dat).
rec() { name=$1; shift; "$M" record --text --buffer-kb "$BUF" --zstd-level "$LEVEL" -o "$out/$name.trace.zst" "$@"; }

cap() {
case "$1" in
hugetlb-fork)
	echo 600 > /proc/sys/vm/nr_hugepages
	rec hugetlb-fork -- "$B/hugetlb_fork" 3 1024
	echo 0 > /proc/sys/vm/nr_hugepages ;;
hugetlb-share-conc)
	# 2 GiB = two shared PMD tables; 3 children alive together; the parent munmaps first.
	echo 1100 > /proc/sys/vm/nr_hugepages
	# --follow: unfiltered it was 2.01 MB, 99% other processes (parallel Rust builds).
	# csd:* and sched_wake_idle_without_ipi: cross-CPU calls whose IPI was elided (idle polling).
	rec hugetlb-share-conc --follow --events "default,csd:*,sched:sched_wake_idle_without_ipi" \
		-- "$B/hugetlb_fork" 3 2048 conc
	echo 0 > /proc/sys/vm/nr_hugepages ;;
compaction)
	# Page cache would dominate the migrations: drop it first so the workload's pages show.
	sync; echo 3 > /proc/sys/vm/drop_caches
	rec compaction -- "$B/compact_frag" 32 1 ;;
compaction-procs)
	# The same workload; `record` now also snapshots every older process's address space
	# (compaction-procs.trace.zst.procs.zst), so their migrated pages can be placed.
	sync; echo 3 > /proc/sys/vm/drop_caches
	rec compaction-procs -- "$B/compact_frag" 32 1 ;;
reclaim-swap)
	[ -f /swapfile ] || { fallocate -l 2G /swapfile; chmod 600 /swapfile; mkswap /swapfile; }
	swapon --show=NAME --noheadings | grep -qx /swapfile || swapon /swapfile
	g=/sys/fs/cgroup/memory/mmreplay-reclaim
	mkdir -p $g
	echo $((32 << 20)) > $g/memory.limit_in_bytes
	echo 100 > $g/memory.swappiness
	# Only the workload joins the group (a shell that moves itself in, then execs it): the
	# recorder's zstd window would not fit in the limit.
	rec reclaim-swap -- sh -c "echo \$\$ > $g/cgroup.procs && exec $B/anon_reclaim 96 2"
	rmdir $g ;;
tour)
	# The bundled default of `mmreplay replay`: one small run on which every candidate shows
	# its effect. hugetlb PMD sharing with concurrent sharers (batched-unshare), compaction
	# migrating the process's pages (ad-preserve), then memcg reclaim with swap and refaults
	# (lookaround), in that order, in one process tree (--follow keeps only it). The hugetlb
	# pool is given back before compaction: with 2 GiB reserved, compact_frag moved 0 pages,
	# and 16 MiB moved 8 of 2,048 (64 MiB: 2,898 of 8,192 in a trial run).
	hp=$(cat /proc/sys/vm/nr_hugepages)
	echo 1100 > /proc/sys/vm/nr_hugepages
	sync; echo 3 > /proc/sys/vm/drop_caches
	[ -f /swapfile ] || { fallocate -l 2G /swapfile; chmod 600 /swapfile; mkswap /swapfile; }
	swapon --show=NAME --noheadings | grep -qx /swapfile || swapon /swapfile
	g=/sys/fs/cgroup/memory/mmreplay-tour
	mkdir -p $g
	echo $((8 << 20)) > $g/memory.limit_in_bytes
	echo 100 > $g/memory.swappiness
	rec tour --follow --events "default,csd:*,sched:sched_wake_idle_without_ipi" -- sh -c \
		"$B/hugetlb_fork 3 2048 conc && echo $hp > /proc/sys/vm/nr_hugepages && $B/compact_frag 64 1 && echo \$\$ > $g/cgroup.procs && exec $B/anon_reclaim 24 2"
	echo "$hp" > /proc/sys/vm/nr_hugepages
	rmdir $g ;;
madv-mprotect)
	rec madv-mprotect -- "$B/madv_mprotect" 200 ;;
threads-shootdown)
	rec threads-shootdown -- "$B/threads_shootdown" 300 ;;
gcc-hello)
	rec gcc-hello -- gcc -O2 -o /tmp/mmreplay-hello "$here/hello.c" ;;
thp-paths)
	# THP mode `madvise` (the machine's setting); khugepaged scans every 100 ms instead of 10 s
	# for the capture (restored after, also when the recording fails).
	k=/sys/kernel/mm/transparent_hugepage/khugepaged
	ss=$(cat $k/scan_sleep_millisecs); as=$(cat $k/alloc_sleep_millisecs)
	echo 100 > $k/scan_sleep_millisecs; echo 100 > $k/alloc_sleep_millisecs
	st=0
	rec thp-paths --events "default,csd:*" -- "$B/thp_paths" 2 || st=$?
	echo "$ss" > $k/scan_sleep_millisecs; echo "$as" > $k/alloc_sleep_millisecs
	[ $st = 0 ] ;;
# Text-format variants of small captures, for the text parser's tests.
fmt-noirq)
	rec fmt-noirq --irq-info off -- "$B/madv_mprotect" 40 ;;
fmt-pipe)
	rec fmt-pipe --from pipe -- "$B/madv_mprotect" 40 ;;
fmt-tgid)
	rec fmt-tgid --tgid -- "$B/threads_shootdown" 40 ;;
# Deliberately small buffers: real lost-event text for the parser.
fmt-lost-pipe)
	"$M" record --buffer-kb 64 --zstd-level "$LEVEL" --from pipe -o "$out/fmt-lost-pipe.trace.zst" \
		-- "$B/madv_mprotect" 200 ;;
fmt-overrun)
	"$M" record --text --buffer-kb 64 --zstd-level "$LEVEL" -o "$out/fmt-overrun.trace.zst" \
		-- "$B/madv_mprotect" 200 ;;
fmt-follow)
	# set_event_pid + event-fork: only the recorder, the workload and its children.
	echo 600 > /proc/sys/vm/nr_hugepages
	rec fmt-follow --follow -- "$B/hugetlb_fork" 2 1024
	echo 0 > /proc/sys/vm/nr_hugepages ;;
# Issue 13's workload kinds, for `mmreplay fidelity`.
parbuild)
	# make -j2 of 7 small C files from a clean copy; --follow keeps other builds out.
	rm -rf /tmp/mmreplay-parbuild && cp -r "$here/parbuild" /tmp/mmreplay-parbuild
	rec parbuild --follow -- make -s -j2 -C /tmp/mmreplay-parbuild ;;
sqlite-threads)
	# 4 threads of one python3 process, one WAL SQLite file each through its own connection.
	rec sqlite-threads --follow -- python3 "$here/sqlite_threads.py" /tmp/mmreplay-sqlite.db 4 60 ;;
pipe-lost-load)
	# trace_pipe with a small buffer while stress-ng faults on the other CPU: real lost events
	# in the middle of a remote-shootdown workload.
	"$M" record --buffer-kb 256 --zstd-level "$LEVEL" --from pipe -o "$out/pipe-lost-load.trace.zst" \
		-- sh -c "stress-ng --vm 1 --vm-bytes 16M --vm-method flip --timeout 1 --quiet & $B/threads_shootdown 60; wait" ;;
*) echo "unknown capture $1" >&2; exit 2 ;;
esac
}

if [ "${1:-}" = all ]; then
	set -- tour hugetlb-fork hugetlb-share-conc compaction reclaim-swap madv-mprotect threads-shootdown gcc-hello thp-paths \
		fmt-noirq fmt-pipe fmt-tgid fmt-follow fmt-lost-pipe fmt-overrun parbuild sqlite-threads \
		pipe-lost-load
fi
for n in "$@"; do cap "$n"; done
