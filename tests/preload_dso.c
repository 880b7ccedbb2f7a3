/* preload_dso.c - a library whose constructor allocates (see preload_ctor.c). */
#include <stdlib.h>
#include <string.h>

static char *greeting;

__attribute__((constructor)) static void dso_init(void)
{
	greeting = malloc(100);
	strcpy(greeting, "allocated in a dlopen'd constructor");
}

__attribute__((destructor)) static void dso_fini(void)
{
	free(greeting);
}

const char *dso_greeting(void);
const char *dso_greeting(void)
{
	return greeting;
}
