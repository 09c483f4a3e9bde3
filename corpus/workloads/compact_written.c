/* (b') compaction migrating pages of a region that another thread keeps writing: the case of
 * 2e3468778dbe ("mm: migrate: try to keep A/D bits of migration entries").
 *
 * Allocates SIZE MiB of anon memory (MADV_NOHUGEPAGE: 4 KiB pages), touches it, frees every
 * other 64 KiB chunk with MADV_DONTNEED (half-empty pageblocks: compaction sources, and the
 * free scanner's targets; chunks, not single pages, keep the madvise calls few), then starts a
 * writer thread that writes one byte of every kept page, pass after pass, until the end. For
 * the region to be both below and above the point where compaction's two scanners meet, it
 * should be most of the machine's free memory (the 6.1 guest of corpus/guest, 384 MiB).
 * Between two of its steps through the region the writer writes the HOT kept pages of lowest
 * PFN, re-read from /proc/self/pagemap as it goes (the writer's own pagemap descriptor; root):
 * compaction's migrate scanner works upwards from the zone's first PFN and a moved page leaves
 * the lowest PFNs, so these are the pages about to be migrated; a page is unmapped only for
 * microseconds (6.1 migrates one folio at a time), so only a page written that often is
 * caught by its writer while it moves. The main thread writes 1 to /proc/sys/vm/compact_memory ROUNDS
 * times, GAP_MS apart (mm/compaction.c:compact_nodes): migrate_pages moves kept pages while the
 * writer writes them. A write that reaches a page while it is unmapped faults and waits
 * (mm/migrate.c:migration_entry_wait) and is retried on the restored PTE; without A/D
 * preservation that PTE is old and clean, so the retried write costs a hardware A and D set
 * (mm/migrate.c:remove_migration_pte). Between rounds it faults the freed pages in again and
 * frees them again, so each round has holes to compact.
 * It reads its own PFNs from /proc/self/pagemap (root) around each compaction and prints how
 * many kept pages moved, so a run that migrated none of them is visible.
 * Usage: compact_written [size_mib=8] [rounds=4] [gap_ms=200] [hot=64]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define CHUNK (16 * PAGE)

static char *p;
static size_t size;
static atomic_int stop;
static unsigned long passes;
#define HOTMAX 4096
static _Atomic size_t hot[HOTMAX]; /* offsets of the hot kept pages */
static size_t nhot;

static int compact(void)
{
	int fd = open("/proc/sys/vm/compact_memory", O_WRONLY);
	if (fd < 0) { perror("open compact_memory"); return -1; }
	if (write(fd, "1", 1) != 1) { perror("write compact_memory"); close(fd); return -1; }
	close(fd);
	return 0;
}

/* Kept pages: those of the even 64 KiB chunks. */
#define FOR_KEPT(off) \
	for (size_t c_ = 0; c_ < size; c_ += 2 * CHUNK) \
		for (size_t off = c_; off < c_ + CHUNK && off < size; off += PAGE)

/* PFN of each kept page; 0 when not present (one read of the region's pagemap). */
static void pfns(int fd, uint64_t *buf, uint64_t *out)
{
	size_t npages = size / PAGE;
	if (pread(fd, buf, npages * 8, ((uintptr_t)p / PAGE) * 8) != (ssize_t)(npages * 8))
		memset(buf, 0, npages * 8);
	size_t i = 0;
	FOR_KEPT(off) {
		uint64_t e = buf[off / PAGE];
		out[i++] = (e >> 63) ? (e & ((1ULL << 55) - 1)) : 0;
	}
}

/* The continuous writer: every kept page, pass after pass; after each 64 of them, the hot
 * pages 16 times, re-picked from the pagemap every 64 steps (the migrate scanner moves up, and
 * a moved page leaves the lowest PFNs). */
static int wpm = -1;
static uint64_t *wpf, *wbuf;
static void pick_hot(const uint64_t *pf);
static void pfns(int fd, uint64_t *buf, uint64_t *out);
static void *writer(void *arg)
{
	(void)arg;
	unsigned char v = 0;
	size_t steps = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		v++;
		size_t k = 0;
		FOR_KEPT(off) {
			((volatile char *)p)[off] = (char)v;
			if (++k % 64)
				continue;
			if (++steps % 64 == 0 && wpm >= 0) {
				pfns(wpm, wbuf, wpf);
				pick_hot(wpf);
			}
			for (int rep = 0; rep < 16; rep++)
				for (size_t h = 0; h < nhot; h++)
					((volatile char *)p)[atomic_load_explicit(&hot[h], memory_order_relaxed)] = (char)v;
		}
		passes++;
	}
	return NULL;
}

/* The HOT kept pages of lowest PFN, from the PFNs in `pf` (one per kept page). */
static uint64_t best_pfn[HOTMAX];
static size_t best_off[HOTMAX];
static void pick_hot(const uint64_t *pf)
{
	size_t have = 0, i = 0;
	FOR_KEPT(off) {
		uint64_t v = pf[i++];
		if (!v || (have == nhot && v >= best_pfn[have - 1]))
			continue;
		size_t j = have < nhot ? have++ : have - 1;
		while (j > 0 && best_pfn[j - 1] > v) {
			best_pfn[j] = best_pfn[j - 1];
			best_off[j] = best_off[j - 1];
			j--;
		}
		best_pfn[j] = v;
		best_off[j] = off;
	}
	for (size_t h = 0; h < have; h++)
		atomic_store_explicit(&hot[h], best_off[h], memory_order_relaxed);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void punch(void)
{
	for (size_t off = CHUNK; off < size; off += 2 * CHUNK)
		madvise(p + off, CHUNK, MADV_DONTNEED);
}

int main(int argc, char **argv)
{
	size = (argc > 1 ? strtoul(argv[1], NULL, 0) : 8) << 20;
	int rounds = argc > 2 ? atoi(argv[2]) : 4;
	long gap = argc > 3 ? atol(argv[3]) : 200;
	nhot = argc > 4 ? strtoul(argv[4], NULL, 0) : 64;
	if (nhot > HOTMAX)
		nhot = HOTMAX;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(p, size, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < size; off += PAGE)
		p[off] = (char)(off >> 12);
	punch();
	int pm = open("/proc/self/pagemap", O_RDONLY);
	size_t n = 0;
	FOR_KEPT(off)
		n++;
	uint64_t *before = calloc(n, 8), *after = calloc(n, 8);
	uint64_t *pm_buf = calloc(size / PAGE, 8);
	wbuf = calloc(size / PAGE, 8);
	wpf = calloc(n, 8);
	wpm = open("/proc/self/pagemap", O_RDONLY);
	if (pm < 0 || wpm < 0 || !before || !after || !pm_buf || !wbuf || !wpf) { perror("pagemap"); return 1; }
	pfns(pm, pm_buf, before);
	pick_hot(before);
	pthread_t w;
	if (pthread_create(&w, NULL, writer, NULL)) { perror("pthread_create"); return 1; }
	size_t total = 0;
	for (int r = 0; r < rounds; r++) {
		sleep_ms(gap);
		pfns(pm, pm_buf, before);
		pick_hot(before);
		if (compact())
			return 1;
		pfns(pm, pm_buf, after);
		size_t moved = 0;
		for (size_t i = 0; i < n; i++)
			moved += before[i] != after[i];
		total += moved;
		printf("compact_written: round %d: %zu of %zu kept pages moved while written\n", r, moved, n);
		/* New holes for the next round: fault the freed pages in again (new, scattered
		 * pages), then free them. */
		for (size_t c = CHUNK; c < size; c += 2 * CHUNK)
			for (size_t off = c; off < c + CHUNK && off < size; off += PAGE)
				p[off] = (char)r;
		punch();
	}
	sleep_ms(gap);
	atomic_store(&stop, 1);
	pthread_join(w, NULL);
	printf("compact_written: %zu kept pages moved in %d rounds; writer made %lu passes\n", total,
	       rounds, passes);
	munmap(p, size);
	return 0;
}
