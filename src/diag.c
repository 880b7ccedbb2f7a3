/*
 * diag.c - diagnostics: "mems: <message>\n" in a single write(2), so lines
 * from several threads never interleave and no allocator is needed.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void mems_diag(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof line, "mems: ");

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
