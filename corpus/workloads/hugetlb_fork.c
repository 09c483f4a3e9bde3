/* (a) fork + exit of processes sharing hugetlb PMD tables.
 *
 * Maps SIZE (default 1 GiB) of MAP_SHARED hugetlb memory from a memfd (MFD_HUGETLB, 2 MiB pages)
 * at a 1 GiB-aligned address, so one PUD entry covers it and the PMD table is shareable
 * (mm/hugetlb.c:want_pmd_share / huge_pmd_share). Touches every 2 MiB page, forks K children
 * that each touch every page again (faults in the children find the parent's PMD table and share
 * it), then everyone exits (exit_mmap -> huge_pmd_unshare).
 * Needs free huge pages: echo 600 > /proc/sys/vm/nr_hugepages.
 * Usage: hugetlb_fork [children=3] [size_mib=1024]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define HPAGE (2UL << 20)
#define GIB (1UL << 30)

static void touch(volatile char *p, size_t size, char v)
{
	for (size_t off = 0; off < size; off += HPAGE)
		p[off] = v;
}

int main(int argc, char **argv)
{
	int k = argc > 1 ? atoi(argv[1]) : 3;
	size_t size = (argc > 2 ? strtoul(argv[2], NULL, 0) : 1024) << 20;
	int fd = memfd_create("mmreplay-hugetlb", MFD_HUGETLB);
	if (fd < 0) { perror("memfd_create(MFD_HUGETLB)"); return 1; }
	if (ftruncate(fd, size)) { perror("ftruncate"); return 1; }
	/* Reserve 2 GiB of address space to find a 1 GiB-aligned hole, then map over it. */
	char *res = mmap(NULL, size + GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) { perror("mmap reserve"); return 1; }
	char *aligned = (char *)(((uintptr_t)res + GIB - 1) & ~(GIB - 1));
	munmap(res, size + GIB);
	char *p = mmap(aligned, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) { perror("mmap hugetlb"); return 1; }
	printf("hugetlb_fork: %zu MiB at %p, %d children\n", size >> 20, (void *)p, k);
	fflush(stdout);
	touch(p, size, 1);
	for (int i = 0; i < k; i++) {
		pid_t c = fork();
		if (c < 0) { perror("fork"); return 1; }
		if (c == 0) {
			touch(p, size, (char)(2 + i));
			_exit(0);
		}
		/* One child at a time: each shares then drops the parent's PMD table. */
		int st;
		waitpid(c, &st, 0);
	}
	munmap(p, size);
	close(fd);
	return 0;
}
