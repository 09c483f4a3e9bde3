/* (f) input for the ordinary-program capture: gcc compiles this file. */
#include <stdio.h>

static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void)
{
	printf("fib(20) = %d\n", fib(20));
	return 0;
}
