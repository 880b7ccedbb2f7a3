/*
 * diag.h - one-line diagnostics on stderr, safe anywhere (no malloc, no
 * stdio buffers: one write(2) of a line formatted on the stack).
 */
#ifndef MEMS_DIAG_H
#define MEMS_DIAG_H

__attribute__((format(printf, 1, 2)))
void mems_diag(const char *fmt, ...);

/* The C locale's text for an errno value.  Unlike strerror() it takes no
 * locale lock and never allocates, so it is safe inside malloc (glibc's
 * bindtextdomain, for one, allocates while holding the lock strerror
 * needs). */
const char *mems_strerror(int err);

#endif
