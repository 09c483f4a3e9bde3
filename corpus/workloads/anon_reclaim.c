/* (c) anon reclaim with swap: run inside a memory cgroup whose limit is below SIZE.
 *
 * Touches SIZE MiB of private anon memory PASSES times, writing each page: every pass after the
 * first refaults pages that reclaim (mm/vmscan.c:shrink_folio_list, try_to_unmap, pageout to
 * swap) took away while the cgroup was at its limit (memcg direct reclaim,
 * mm/memcontrol.c:try_charge -> try_to_free_mem_cgroup_pages).
 * Usage: anon_reclaim [size_mib=96] [passes=2]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	size_t size = (argc > 1 ? strtoul(argv[1], NULL, 0) : 96) << 20;
	int passes = argc > 2 ? atoi(argv[2]) : 2;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(p, size, MADV_NOHUGEPAGE);
	unsigned long sum = 0;
	for (int r = 0; r < passes; r++)
		for (size_t off = 0; off < size; off += 4096) {
			sum += (unsigned char)p[off];
			p[off] = (char)(r + 1 + (off >> 12));
		}
	printf("anon_reclaim: %zu MiB x %d passes, checksum %lu\n", size >> 20, passes, sum);
	return 0;
}
