/* (a) fork + exit of processes sharing hugetlb PMD tables.
 *
 * Maps SIZE (default 1 GiB) of MAP_SHARED hugetlb memory from a memfd (MFD_HUGETLB, 2 MiB pages)
 * at a 1 GiB-aligned address, so one PUD entry covers it and the PMD table is shareable
 * (mm/hugetlb.c:want_pmd_share / huge_pmd_share). Touches every 2 MiB page, forks K children
 * that each touch every page again (faults in the children find the parent's PMD table and share
 * it), then everyone exits (exit_mmap -> huge_pmd_unshare).
 * Needs free huge pages: echo 600 > /proc/sys/vm/nr_hugepages (1100 for 2 GiB).
 *
 * Mode `seq` (default): one child at a time (fork, touch, exit, wait): each exit takes the
 * shared tables' pt_share_count 1 -> 0.
 * Mode `conc`: all K children touch and then stay alive; the parent munmaps its mapping while
 * K sharers remain (huge_pmd_unshare with pt_share_count staying >= 1), then releases the
 * children one at a time; only the last exit drives pt_share_count to 0 (the scenarios of
 * 8ce720d5bd91 "batched hugetlb unshare IPIs": V1 sends one sync IPI per unshared table).
 * Usage: hugetlb_fork [children=3] [size_mib=1024] [seq|conc]
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

static int run_concurrent(char *p, size_t size, int fd, int k)
{
	int ready[2], go[2];
	pid_t kids[64];
	if (k > 64 || pipe(ready) || pipe(go)) { perror("pipe"); return 1; }
	for (int i = 0; i < k; i++) {
		kids[i] = fork();
		if (kids[i] < 0) { perror("fork"); return 1; }
		if (kids[i] == 0) {
			char c;
			touch(p, size, (char)(2 + i));
			if (write(ready[1], "r", 1) != 1) _exit(1);
			/* Children exit one at a time, as the parent hands out bytes. */
			if (read(go[0], &c, 1) != 1) _exit(1);
			_exit(0);
		}
	}
	for (int i = 0; i < k; i++) {
		char c;
		if (read(ready[0], &c, 1) != 1) { perror("read ready"); return 1; }
	}
	/* K sharers remain: the parent's unshare leaves the tables shared. */
	munmap(p, size);
	/* One byte, one exit (whichever child reads it), before the next byte. */
	for (int i = 0; i < k; i++) {
		if (write(go[1], "g", 1) != 1) { perror("write go"); return 1; }
		if (wait(NULL) < 0) { perror("wait"); return 1; }
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	int k = argc > 1 ? atoi(argv[1]) : 3;
	size_t size = (argc > 2 ? strtoul(argv[2], NULL, 0) : 1024) << 20;
	int conc = argc > 3 && strcmp(argv[3], "conc") == 0;
	if (size % GIB) { fprintf(stderr, "size must be a multiple of 1024 MiB\n"); return 1; }
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
	printf("hugetlb_fork: %zu MiB at %p, %d children, %s\n", size >> 20, (void *)p, k,
	       conc ? "concurrent" : "sequential");
	fflush(stdout);
	touch(p, size, 1);
	if (conc)
		return run_concurrent(p, size, fd, k);
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
