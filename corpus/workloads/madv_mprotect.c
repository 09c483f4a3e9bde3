/* (d) MADV_FREE / MADV_DONTNEED / mprotect heavy, single thread.
 *
 * A 16 MiB anon region in 64 KiB chunks: each round writes a chunk, then MADV_FREEs it, writes
 * it again (reusing the lazily freed pages, mm/madvise.c:madvise_free_pte_range), mprotects it
 * read-only then read-write (mm/mprotect.c:change_protection; write faults after), and
 * MADV_DONTNEEDs it (zap_pte_range; the next write faults in fresh zero pages).
 * Usage: madv_mprotect [rounds=200]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define SIZE (16UL << 20)
#define CHUNK (64UL << 10)

static void write_chunk(char *c, char v)
{
	for (size_t off = 0; off < CHUNK; off += 4096)
		c[off] = v;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(p, SIZE, MADV_NOHUGEPAGE);
	unsigned long sum = 0;
	for (int r = 0; r < rounds; r++) {
		char *c = p + (size_t)(r % (SIZE / CHUNK)) * CHUNK;
		write_chunk(c, (char)r);
		if (madvise(c, CHUNK, MADV_FREE)) perror("MADV_FREE");
		if (r % 3 == 0) write_chunk(c, (char)(r + 1));
		if (mprotect(c, CHUNK, PROT_READ)) perror("mprotect ro");
		sum += (unsigned char)c[0];
		if (mprotect(c, CHUNK, PROT_READ | PROT_WRITE)) perror("mprotect rw");
		write_chunk(c, (char)(r + 2));
		if (r % 2 == 0 && madvise(c, CHUNK, MADV_DONTNEED)) perror("MADV_DONTNEED");
	}
	printf("madv_mprotect: %d rounds, checksum %lu\n", rounds, sum);
	munmap(p, SIZE);
	return 0;
}
