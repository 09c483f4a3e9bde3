#!/bin/sh
# Re-make corpus/paired/mmwork.pipe-stderr.perfdata.zst (see README.md there): a perf pipe-mode
# capture of mmwork whose file got the recorder's stderr appended after the last record, as
# `perf record -o - ... 2>&1 | cat > f` or `echo ... >> f` leave it. Run as root from this
# directory with perf (6.1 used). The expected counts are `perf script`'s (printed at the end;
# perf reads the whole stream and stops at the tail with "unexpected end of event stream").
set -eu
OUT=${OUT:-.}
gcc -O2 -pthread -o /tmp/mmwork mmwork.c
F="$OUT/mmwork.pipe-stderr.perfdata"
# Tracepoints on this shared machine: take the tracefs lock as every host capture does.
flock /tmp/mmreplay-tracefs.lock perf record -q -e sched:sched_switch,sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit,tlb:tlb_flush,syscalls:sys_enter_mprotect \
  -o - /tmp/mmwork "${ROUNDS:-5}" | cat > "$F"
echo 'some stderr' >> "$F"
perf script -i "$F" -F event 2>&1 | sort | uniq -c
zstd -q -19 -f --rm "$F" -o "$F.zst"
