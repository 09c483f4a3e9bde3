/* mmwork: small real MM workload for the paired binary/text captures (corpus/paired/README.md).
 * Two threads on different CPUs share an mm, so munmap/mprotect of touched memory needs a remote
 * TLB shootdown (tlb_flush + ipi_send_cpumask); a fork + exec exercises process events.
 * Usage: mmwork [rounds]   (default 20). Build: gcc -O2 -pthread -o mmwork mmwork.c */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof(s), &s);
}

static void *spinner(void *arg)
{
	(void)arg;
	pin(1);
	while (!stop)
		__asm__ volatile("" ::: "memory");
	return NULL;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20;
	long pg = sysconf(_SC_PAGESIZE);
	pthread_t t;
	pin(0);
	pthread_create(&t, NULL, spinner, NULL);
	for (int r = 0; r < rounds; r++) {
		size_t len = 16 * pg;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 1;
		for (size_t i = 0; i < len; i += pg)
			p[i] = (char)r;
		mprotect(p, 4 * pg, PROT_READ);
		madvise(p + 4 * pg, 4 * pg, MADV_DONTNEED);
		p[5 * pg] = 1;
		munmap(p, len);
	}
	pid_t c = fork();
	if (c == 0) {
		char *q = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (q != MAP_FAILED)
			memset(q, 1, 4 * pg);
		execl("/bin/true", "true", (char *)NULL);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	stop = 1;
	pthread_join(t, NULL);
	return 0;
}
