// Measures the nsenter constructor's cost when _HUSK_NSENTER is unset:
//
//	gcc -O2 -o /tmp/nsenter-bench testdata/bench/bench.c && /tmp/nsenter-bench
//
// It includes the real constructor and calls it in a loop (the constructor
// also runs once at start-up, unset, like in any husk process).
#include "../../nsenter.c"

#include <time.h>

int main(void)
{
	enum { N = 10000000 };
	struct timespec a, b;
	int nenv = 0;

	unsetenv(HUSK_ENV);
	for (char **e = environ; *e; e++)
		nenv++;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++) {
		husk_nsenter();
		__asm__ volatile("" ::: "memory");
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("husk_nsenter, unset, %d env vars: %.1f ns/call\n", nenv,
	       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / N);
	return 0;
}
