#!/bin/sh
# Re-make corpus/paired/raw/ (see README.md): the layout `mmreplay record --raw` should write,
# read by mmreplay_parsers::binary::rawdir. The instance's `trace` text (non-consuming) is saved
# first as raw.trace.txt.zst, then the pages are consumed from per_cpu/cpuN/trace_pipe_raw.
set -eu
OUT=${OUT:-raw}
gcc -O2 -pthread -o /tmp/mmwork mmwork.c
EVENTS="exceptions:page_fault_user tlb:tlb_flush ipi:ipi_send_cpumask ipi:ipi_send_cpu \
sched:sched_switch sched:sched_process_fork sched:sched_process_exec sched:sched_process_exit \
syscalls:sys_enter_mmap syscalls:sys_exit_mmap syscalls:sys_enter_munmap syscalls:sys_enter_mprotect \
syscalls:sys_enter_madvise task:task_newtask"
T=/sys/kernel/tracing; I=$T/instances/mmreplay_raw
mountpoint -q $T || mount -t tracefs nodev $T
[ -d $I ] || mkdir $I
echo 0 > $I/tracing_on; echo > $I/set_event; echo > $I/trace
echo 1 > $I/options/event-fork
for e in $EVENTS; do echo "$e" >> $I/set_event; done
sh -c "echo \$\$ > $I/set_event_pid; echo 1 > $I/tracing_on; exec /tmp/mmwork ${ROUNDS:-5}"
echo 0 > $I/tracing_on
rm -rf "$OUT"; mkdir -p "$OUT/events"
cat $I/trace | zstd -q -19 > raw.trace.txt.zst
cp $T/events/header_page $T/events/header_event "$OUT/events/"
for e in $EVENTS; do
  sys=${e%%:*}; ev=${e#*:}; mkdir -p "$OUT/events/$sys/$ev"; cp "$I/events/$sys/$ev/format" "$OUT/events/$sys/$ev/format"
done
cp $T/saved_cmdlines "$OUT/saved_cmdlines"
grep -E ' [tTwW] .*(flush_tlb|tlb_|smp_call|on_each_cpu|generic_exec|ipi|irq_work|resched|ttwu|try_to_wake|sched_|native_)' /proc/kallsyms > "$OUT/kallsyms"
for c in $I/per_cpu/cpu*; do
  n=${c##*/}; mkdir -p "$OUT/per_cpu/$n"
  # Non-blocking: dd stops with EAGAIN once the buffer is empty.
  dd if=$c/trace_pipe_raw of="$OUT/per_cpu/$n/trace_pipe_raw" bs=4096 iflag=nonblock status=none 2>/dev/null || true
done
echo > $I/set_event; echo > $I/set_event_pid; rmdir $I
