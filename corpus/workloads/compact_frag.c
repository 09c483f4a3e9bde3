/* (b) compaction migrating pages of a fragmented process.
 *
 * Allocates SIZE MiB of anon memory (MADV_NOHUGEPAGE: 4 KiB pages), touches it, frees every
 * other page with MADV_DONTNEED (leaving half-empty pageblocks, good compaction sources), then
 * writes 1 to /proc/sys/vm/compact_memory (mm/compaction.c:compact_nodes): isolate_migratepages
 * picks the process's pages and migrate_pages moves them, with set_migration_pte /
 * remove_migration_pte on the process's PTEs (mm/rmap.c:try_to_migrate_one,
 * mm/migrate.c:remove_migration_pte). Then touches every remaining page again.
 * It reads its own PFNs from /proc/self/pagemap (root) before and after each compaction and
 * prints how many of its pages moved, so a run that migrated none of them is visible.
 * Usage: compact_frag [size_mib=64] [rounds=1]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/mman.h>

#define PAGE 4096UL

static int compact(void)
{
	int fd = open("/proc/sys/vm/compact_memory", O_WRONLY);
	if (fd < 0) { perror("open compact_memory"); return -1; }
	if (write(fd, "1", 1) != 1) { perror("write compact_memory"); close(fd); return -1; }
	close(fd);
	return 0;
}

/* PFN of each kept (even) page; 0 when not present. */
static void pfns(int fd, char *p, size_t size, uint64_t *out)
{
	for (size_t i = 0, off = 0; off < size; off += 2 * PAGE, i++) {
		uint64_t e = 0;
		if (pread(fd, &e, 8, ((uintptr_t)(p + off) / PAGE) * 8) != 8)
			e = 0;
		out[i] = (e >> 63) ? (e & ((1ULL << 55) - 1)) : 0;
	}
}

int main(int argc, char **argv)
{
	size_t size = (argc > 1 ? strtoul(argv[1], NULL, 0) : 64) << 20;
	int rounds = argc > 2 ? atoi(argv[2]) : 1;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(p, size, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < size; off += PAGE)
		p[off] = (char)(off >> 12);
	int pm = open("/proc/self/pagemap", O_RDONLY);
	size_t n = size / (2 * PAGE);
	uint64_t *before = calloc(n, 8), *after = calloc(n, 8);
	if (pm < 0 || !before || !after) { perror("pagemap"); return 1; }
	for (int r = 0; r < rounds; r++) {
		for (size_t off = PAGE; off < size; off += 2 * PAGE)
			madvise(p + off, PAGE, MADV_DONTNEED);
		pfns(pm, p, size, before);
		if (compact())
			return 1;
		pfns(pm, p, size, after);
		size_t moved = 0;
		uint64_t lo = UINT64_MAX, hi = 0;
		for (size_t i = 0; i < n; i++) {
			moved += before[i] != after[i];
			if (before[i] && before[i] < lo) lo = before[i];
			if (before[i] > hi) hi = before[i];
		}
		printf("compact_frag: round %d: %zu of %zu kept pages moved (pfn 0x%llx-0x%llx before)\n",
		       r, moved, n, (unsigned long long)lo, (unsigned long long)hi);
		unsigned long sum = 0;
		for (size_t off = 0; off < size; off += PAGE) {
			sum += (unsigned char)p[off];
			p[off] = (char)(r + 1);
		}
		printf("compact_frag: round %d checksum %lu\n", r, sum);
	}
	munmap(p, size);
	return 0;
}
