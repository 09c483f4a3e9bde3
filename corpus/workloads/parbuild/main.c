/* Links the parbuild units and runs them once (corpus/README.md, parbuild). */
#include <stdio.h>

long unit1(int), unit2(int), unit3(int), unit4(int), unit5(int), unit6(int);

int main(void)
{
	printf("%ld\n", unit1(1000) + unit2(2000) + unit3(3000) + unit4(4000) + unit5(5000) +
				unit6(6000));
	return 0;
}
