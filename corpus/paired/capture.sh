#!/bin/sh
# Re-make the paired captures of corpus/paired/ (see README.md there). Run as root from this
# directory on a machine with tracefs, trace-cmd (3.1.6 used) and perf (6.1 used).
# Binary and text of each pair come from the SAME capture (the text is rendered from the binary).
set -eu
OUT=${OUT:-.}
gcc -O2 -pthread -o /tmp/mmwork mmwork.c
EVENTS="exceptions:page_fault_user tlb:tlb_flush ipi:ipi_send_cpumask ipi:ipi_send_cpu \
sched:sched_switch sched:sched_process_fork sched:sched_process_exec sched:sched_process_exit \
syscalls:sys_enter_mmap syscalls:sys_exit_mmap syscalls:sys_enter_munmap syscalls:sys_enter_mprotect \
syscalls:sys_enter_madvise task:task_newtask"
TC_EV=""; PERF_EV=""
for e in $EVENTS; do TC_EV="$TC_EV -e $e"; PERF_EV="$PERF_EV${PERF_EV:+,}$e"; done

# trace-cmd: `trace-cmd record` cannot run here (it fails to write /proc/sys/kernel/ftrace_enabled),
# so events are enabled through tracefs in an own instance (does not disturb other users of the
# top-level buffer), limited to the workload's pids (set_event_pid + event-fork), then extracted.
T=/sys/kernel/tracing; I=$T/instances/mmreplay_paired
mountpoint -q $T || mount -t tracefs nodev $T
[ -d $I ] || mkdir $I
echo 0 > $I/tracing_on; echo > $I/set_event; echo > $I/trace
echo 1 > $I/options/event-fork
for e in $EVENTS; do echo "$e" >> $I/set_event; done
sh -c "echo \$\$ > $I/set_event_pid; echo 1 > $I/tracing_on; exec /tmp/mmwork ${ROUNDS:-20}"
echo 0 > $I/tracing_on
# extract writes v7 (zstd) by default with trace-cmd 3.1.6; v6 is converted from the same file.
# The full /proc/kallsyms (5 MB) would push the files over the corpus size budget: extract sees
# a filtered copy (IPI, TLB, smp-call and scheduler symbols; enough to name every IPI callsite
# and callback in this workload), bind-mounted over /proc/kallsyms in a private mount namespace.
grep -E ' [tTwW] .*(flush_tlb|tlb_|smp_call|on_each_cpu|generic_exec|ipi|irq_work|resched|ttwu|try_to_wake|sched_|native_)' /proc/kallsyms > /tmp/paired.kallsyms
unshare -m sh -c "mount --bind /tmp/paired.kallsyms /proc/kallsyms && trace-cmd extract -B mmreplay_paired -o /tmp/paired.raw.dat" >/dev/null
# (extract -B removes the instance itself; clean up if it did not)
[ -d $I ] && { echo > $I/set_event; rmdir $I; }
trace-cmd convert -i /tmp/paired.raw.dat --file-version 7 --compression zstd -o "$OUT/mmwork.v7.dat"
trace-cmd convert -i /tmp/paired.raw.dat --file-version 6 -o "$OUT/mmwork.v6.dat"
trace-cmd report -i "$OUT/mmwork.v7.dat" > "$OUT/mmwork.v7.report.txt"
trace-cmd report -i "$OUT/mmwork.v6.dat" > "$OUT/mmwork.v6.report.txt"

# perf: file mode (zstd-compressed records with -z), its `perf script`, and pipe mode.
perf record -q -z -e "$PERF_EV" -o "$OUT/mmwork.perf.data" /tmp/mmwork "${ROUNDS:-20}"
perf script -i "$OUT/mmwork.perf.data" > "$OUT/mmwork.perf.script.txt"
perf record -q -e "$PERF_EV" -o - /tmp/mmwork "${ROUNDS:-20}" > "$OUT/mmwork.pipe.perf.data"
perf script -i - < "$OUT/mmwork.pipe.perf.data" > "$OUT/mmwork.pipe.perf.script.txt"

# perf.data carries no kallsyms: keep the filtered copy of this boot for IPI classification.
cp /tmp/paired.kallsyms "$OUT/mmwork.kallsyms"

# Everything is stored zstd -19 compressed (the readers look through it).
for f in mmwork.v7.dat mmwork.v6.dat mmwork.v7.report.txt mmwork.v6.report.txt mmwork.perf.data \
  mmwork.perf.script.txt mmwork.pipe.perf.data mmwork.pipe.perf.script.txt mmwork.kallsyms; do
  zstd -q -19 -f --rm "$OUT/$f" -o "$OUT/$f.zst"
done
