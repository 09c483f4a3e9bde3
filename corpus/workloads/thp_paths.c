/* (g) Transparent huge pages: PMD splits, a khugepaged collapse and mremap of THP regions.
 *
 * Two threads on two CPUs share the mm: a helper pinned to CPU 1 keeps reading the regions (so
 * CPU 1 runs the mm and every flush of it is a remote one), the main thread on CPU 0, each round:
 *  1. maps an 8 MiB region aligned to 2 MiB, madvise(MADV_HUGEPAGE), writes one byte per 4 KiB
 *     page: 4 THP faults (do_huge_pmd_anonymous_page, one fault per 2 MiB);
 *  2. splits: mprotect(PROT_READ) of one 4 KiB page inside THP 0 (vma_adjust_trans_huge ->
 *     __split_huge_pmd -> pmdp_invalidate -> flush), munmap of 64 KiB inside THP 1 (split + zap),
 *     MADV_DONTNEED of 64 KiB inside THP 2 (zap_pmd_range splits a partly covered PMD);
 *  3. mremap of the whole THP 3 (2 MiB, aligned) to a 2 MiB-aligned hole: move_huge_pmd;
 *     mremap of a 4 MiB region of 4 KiB pages (MADV_NOHUGEPAGE) to an aligned hole: two
 *     move_normal_pmd; mremap of 1 MiB from the middle of a THP: split + move_ptes;
 *  4. collapse: a 2 MiB-aligned 4 MiB region written page by page with MADV_NOHUGEPAGE, then
 *     madvise(MADV_HUGEPAGE): khugepaged collapses it (pmdp_collapse_flush +
 *     tlb_remove_table_sync_one). Waits (up to 20 s) until /proc/self/smaps shows AnonHugePages
 *     for it; capture.sh lowers khugepaged's scan_sleep_millisecs/alloc_sleep_millisecs.
 * Everything is unmapped at the end of the round. Prints what it saw (collapse waits).
 * Usage: thp_paths [rounds=2]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define HP (2UL << 20)
#define PG 4096UL

static atomic_int done;
static char *volatile watch[4];
static volatile size_t watch_len[4];

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

/* Reads a page of each watched region in a loop, without system calls and without sleeping:
 * CPU 1 keeps running the mm, so no flush of it can skip CPU 1 as lazy. */
static void *helper(void *arg)
{
	(void)arg;
	pin(1);
	unsigned long sum = 0;
	while (!atomic_load(&done)) {
		for (int i = 0; i < 4; i++) {
			char *p = watch[i];
			if (p)
				sum += (unsigned char)p[0];
		}
	}
	return (void *)sum;
}

/* An address range of `len` bytes aligned to 2 MiB, reserved PROT_NONE (the caller maps over). */
static char *aligned_hole(size_t len)
{
	char *p = mmap(NULL, len + HP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) { perror("mmap hole"); exit(1); }
	char *a = (char *)(((uintptr_t)p + HP - 1) & ~(HP - 1));
	if (a > p) munmap(p, a - p);
	munmap(a + len, p + len + HP - (a + len));
	return a;
}

static char *map_at(char *a, size_t len, int advice)
{
	char *p = mmap(a, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); exit(1); }
	if (madvise(p, len, advice)) perror("madvise");
	return p;
}

static void touch(char *p, size_t len, int v)
{
	for (size_t off = 0; off < len; off += PG)
		p[off] = (char)v;
}

/* kB of AnonHugePages of the VMA starting at `start`, from /proc/self/smaps. */
static long anon_huge_kb(char *start)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f) return -1;
	char line[512];
	int in = 0;
	long kb = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (s == (uintptr_t)start);
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2;
	pin(0);
	pthread_t t;
	if (pthread_create(&t, NULL, helper, NULL)) { perror("pthread_create"); return 1; }
	for (int r = 0; r < rounds; r++) {
		/* 1. four THPs */
		char *thp = map_at(aligned_hole(4 * HP), 4 * HP, MADV_HUGEPAGE);
		touch(thp, 4 * HP, r + 1);
		watch[0] = thp;
		long huge0 = anon_huge_kb(thp);
		/* 2. splits */
		if (mprotect(thp + HP / 2, PG, PROT_READ)) perror("mprotect");
		if (munmap(thp + HP + HP / 2, 64 << 10)) perror("munmap");
		if (madvise(thp + 2 * HP + HP / 2, 64 << 10, MADV_DONTNEED)) perror("madvise dontneed");
		/* 3. mremap: a whole THP, a region of small pages, a piece of a THP */
		char *dst = aligned_hole(HP);
		char *moved = mremap(thp + 3 * HP, HP, HP, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (moved == MAP_FAILED) perror("mremap thp");
		else watch[1] = moved;
		char *small = map_at(aligned_hole(2 * HP), 2 * HP, MADV_NOHUGEPAGE);
		touch(small, 2 * HP, r + 2);
		char *dst2 = aligned_hole(2 * HP);
		char *moved2 = mremap(small, 2 * HP, 2 * HP, MREMAP_MAYMOVE | MREMAP_FIXED, dst2);
		if (moved2 == MAP_FAILED) perror("mremap small");
		char *thp2 = map_at(aligned_hole(HP), HP, MADV_HUGEPAGE);
		touch(thp2, HP, r + 3);
		char *dst3 = aligned_hole(HP);
		char *moved3 = mremap(thp2 + HP / 4, HP / 2, HP / 2, MREMAP_MAYMOVE | MREMAP_FIXED, dst3);
		if (moved3 == MAP_FAILED) perror("mremap piece");
		/* 4. collapse */
		char *col = map_at(aligned_hole(2 * HP), 2 * HP, MADV_NOHUGEPAGE);
		touch(col, 2 * HP, r + 4);
		watch[2] = col;
		if (madvise(col, 2 * HP, MADV_HUGEPAGE)) perror("madvise hugepage");
		int waited = 0;
		long huge = 0;
		while (waited < 200 && (huge = anon_huge_kb(col)) < (long)(2 * HP >> 10)) {
			usleep(100000);
			waited++;
		}
		printf("round %d: %ld kB AnonHugePages after the faults; collapse region %ld kB huge after %d ms\n",
		       r, huge0, huge, waited * 100);
		fflush(stdout);
		for (int i = 0; i < 4; i++) watch[i] = NULL;
		usleep(1000);
		munmap(thp, 3 * HP);
		if (moved != MAP_FAILED) munmap(moved, HP);
		if (moved2 != MAP_FAILED) munmap(moved2, 2 * HP);
		munmap(thp2, HP);
		if (moved3 != MAP_FAILED) munmap(moved3, HP / 2);
		munmap(col, 2 * HP);
	}
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	return 0;
}
