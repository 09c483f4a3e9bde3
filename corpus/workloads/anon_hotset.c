/* (c') anon reclaim with a hot set: run inside a memory cgroup whose limit is below HOT + COLD.
 *
 * Keeps HOT MiB of private anon memory in use (every page read and written once per round)
 * while streaming through COLD MiB (the next 1 MiB chunk each round, cyclically). After their
 * first fault the hot pages are touched only through present PTEs: no fault tells the kernel's
 * tracepoints about them, but the hardware sets their accessed bits, so reclaim
 * (mm/vmscan.c:folio_check_references under the classic LRU, the MGLRU page-table walk and
 * look-around) keeps them and takes the cold chunks instead. `mmreplay record --access` makes
 * the writes visible (soft-dirty write-protection: the first write of a page after each clear
 * faults).
 * Usage: anon_hotset [hot_mib=8] [cold_mib=96] [rounds=400]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static char *map(size_t size)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); exit(1); }
	madvise(p, size, MADV_NOHUGEPAGE);
	return p;
}

int main(int argc, char **argv)
{
	size_t hot = (argc > 1 ? strtoul(argv[1], NULL, 0) : 8) << 20;
	size_t cold = (argc > 2 ? strtoul(argv[2], NULL, 0) : 96) << 20;
	int rounds = argc > 3 ? atoi(argv[3]) : 400;
	const size_t chunk = 1 << 20;
	char *h = map(hot), *c = map(cold);
	unsigned long sum = 0;
	size_t next = 0;
	for (int r = 0; r < rounds; r++) {
		for (size_t off = 0; off < hot; off += 4096) {
			sum += (unsigned char)h[off];
			h[off] = (char)(r + (off >> 12));
		}
		for (size_t off = 0; off < chunk; off += 4096) {
			sum += (unsigned char)c[next + off];
			c[next + off] = (char)(r + 1);
		}
		next = (next + chunk) % cold;
	}
	printf("anon_hotset: hot %zu MiB, cold %zu MiB, %d rounds, checksum %lu\n", hot >> 20,
	       cold >> 20, rounds, sum);
	return 0;
}
