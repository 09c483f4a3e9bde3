#!/bin/sh
# Prints the checks corpus/README.md quotes for each capture: lines, size, the events the
# workload is meant to produce, and the event counts. Usage: summarize.sh [CAPTURE.trace.zst...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- "$here"/../captures/*.trace.zst
for f in "$@"; do
	t=$(mktemp)
	zstdcat "$f" > "$t"
	pid=$(sed -n 's/.*"workload_pid": \([0-9]*\).*/\1/p' "$f.meta.json")
	c() { grep -c -E -e "$1" "$t" || true; }
	echo "== $(basename "$f")  $(stat -c %s "$f") bytes, $(wc -l < "$t") lines, workload pid $pid"
	echo "   page_fault_user=$(c ' page_fault_user: ') (workload pid: $(c "\-$pid .* page_fault_user: "))" \
	     "set_migration_pte=$(c ' set_migration_pte: ') remove_migration_pte=$(c ' remove_migration_pte: ')" \
	     "tlb_flush_remote_send=$(c 'tlb_flush: .*remote IPI send') tlb_flush_remote_recv=$(c 'tlb_flush: .*remote shootdown')" \
	     "ipi_send=$(c ' ipi_send_cpu(mask)?: ') mm_vmscan=$(c ' mm_vmscan_[a-z_]+: ')" \
	     "write_folio=$(c ' mm_vmscan_write_folio: ') compaction=$(c ' mm_compaction_[a-z_]+: ')" \
	     "lost_markers=$(c 'LOST [0-9]+ EVENTS')"
	printf '   events:'
	grep -v '^#' "$t" | sed -E 's/^.*[0-9]+\.[0-9]+: ([a-zA-Z0-9_]+)[:( ].*$/\1/' | sort | uniq -c |
		sort -rn | awk '{printf " %s=%s", $2, $1} END {print ""}'
	rm -f "$t"
done
