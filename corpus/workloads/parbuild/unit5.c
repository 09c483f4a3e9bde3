/* A small translation unit for the parallel-build capture (corpus/README.md, parbuild). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec5 { long key; double val; char name[32]; };

static int cmp5(const void *a, const void *b)
{
	const struct rec5 *x = a, *y = b;
	return (x->key > y->key) - (x->key < y->key);
}

long unit5(int n)
{
	struct rec5 *v = calloc((size_t)n, sizeof(*v));
	long sum = 0;
	if (!v)
		return -1;
	for (int j = 0; j < n; j++) {
		v[j].key = (j * 2654435761u) % 1000003u;
		v[j].val = j * 0.5;
		snprintf(v[j].name, sizeof(v[j].name), "r%d-%d", 5, j);
	}
	qsort(v, (size_t)n, sizeof(*v), cmp5);
	for (int j = 0; j < n; j++)
		sum += v[j].key + (long)strlen(v[j].name);
	free(v);
	return sum;
}
