/* (e) multi-threaded shared mm with remote TLB shootdowns.
 *
 * Two threads pinned to CPU 0 and CPU 1 (so both CPUs are in mm_cpumask and the other CPU is
 * running the mm): the "runner" keeps writing a 4 MiB region; the "changer" repeatedly writes a
 * 256 KiB piece of a second region, mprotects it read-only and back, munmaps it and maps it again
 * (MAP_FIXED). Each mprotect/munmap must flush the runner's CPU: arch/x86/mm/tlb.c
 * flush_tlb_mm_range -> native_flush_tlb_multi (tlb_flush "remote IPI send" on the sender,
 * ipi_send_cpumask with callback flush_tlb_func, "remote shootdown" on the receiver).
 * Usage: threads_shootdown [rounds=300]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define RUN_SIZE (4UL << 20)
#define PIECE (256UL << 10)

static atomic_int done;
static char *run_area;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static void *runner(void *arg)
{
	(void)arg;
	pin(1);
	unsigned v = 0;
	while (!atomic_load(&done)) {
		for (size_t off = 0; off < RUN_SIZE; off += 4096)
			run_area[off] = (char)v;
		v++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 300;
	pin(0);
	run_area = mmap(NULL, RUN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *piece = mmap(NULL, PIECE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (run_area == MAP_FAILED || piece == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(run_area, RUN_SIZE, MADV_NOHUGEPAGE);
	pthread_t t;
	if (pthread_create(&t, NULL, runner, NULL)) { perror("pthread_create"); return 1; }
	unsigned long sum = 0;
	for (int r = 0; r < rounds; r++) {
		for (size_t off = 0; off < PIECE; off += 4096)
			piece[off] = (char)r;
		if (mprotect(piece, PIECE, PROT_READ)) perror("mprotect ro");
		sum += (unsigned char)piece[r % PIECE];
		if (mprotect(piece, PIECE, PROT_READ | PROT_WRITE)) perror("mprotect rw");
		if (r % 4 == 3) {
			if (munmap(piece, PIECE)) perror("munmap");
			char *q = mmap(piece, PIECE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (q == MAP_FAILED) { perror("mmap fixed"); return 1; }
		}
	}
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	printf("threads_shootdown: %d rounds, checksum %lu\n", rounds, sum);
	return 0;
}
