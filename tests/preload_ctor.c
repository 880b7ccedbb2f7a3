/*
 * preload_ctor.c - allocation before main, in a constructor, and in a
 * library loaded with dlopen (tests/preload_dso.c), whose constructor
 * allocates too.  Prints what it saw; the output does not depend on the
 * allocator.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *early;

__attribute__((constructor)) static void before_main(void)
{
	early = malloc(64);
	strcpy(early, "allocated before main");
	void *tmp = calloc(100, 100);
	free(tmp);
}

int main(int argc, char **argv)
{
	puts(early);
	free(early);
	if (argc < 2) {
		fprintf(stderr, "usage: preload_ctor DSO\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	const char *(*greet)(void) = (const char *(*)(void))dlsym(h, "dso_greeting");
	char *copy = strdup(greet());
	puts(copy);
	free(copy);
	dlclose(h);
	return 0;
}
