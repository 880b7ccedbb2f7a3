/*
 * options.h - the one table of MeMS options.
 */
#ifndef MEMS_OPTIONS_H
#define MEMS_OPTIONS_H
#include <stddef.h>
#include <stdint.h>

enum mems_opt {
	OPT_PAGER,            /* auto | uffd | uffd-user | kernel   (init) */
	OPT_SPAN_SIZE,        /* bytes of address space to reserve   (init) */
	OPT_FAULT_AROUND,     /* most pages populated per fault       (init) */
	OPT_ABORT_ON_ERROR,   /* abort() on bad input                 (live) */
	OPT_HANDLER_SPIN,     /* us the handler polls before sleeping (init) */
	OPT_STATS_ON_EXIT,    /* print the stats to stderr at exit    (init) */
	OPT_TRACE,            /* trace file ("" for none)             (init) */
	OPT_RESIDENT_MAX,     /* resident cap in bytes, 0 for none    (init) */
	OPT_SWAP_FILE,        /* where evicted pages go ("": $TMPDIR) (init) */
	OPT_EVICT_POLICY,     /* clock | fifo                         (init) */
	OPT_FAIL,             /* fault injection, tests (fail.c)      (init) */
	OPT_PURGE_DELAY,      /* ms before free pages go back (-1 never) (init) */
	OPT_SMALL_RUNS,       /* small blocks in runs (pointer API)   (init) */
	OPT_POPULATE,         /* blocks up to this populated at malloc (init) */
	OPT_FAULT_AHEAD,      /* a helper thread populates ahead     (init) */
	OPT_COUNT
};

#define SPAN_MIN (1ll << 20)   /* the smallest span (MEMS_SPAN_SIZE) */

/* Read the MEMS_* environment for options not set through the API. */
void opts_load(void);
int64_t opt_int(enum mems_opt o);
/* The option was set, through the API or by a valid MEMS_* variable (not
 * left to its default). */
int opt_given(enum mems_opt o);
/* The text of an enum option's value. */
const char *opt_choice(enum mems_opt o);
/* The text of a string option. */
void opt_str(enum mems_opt o, char *buf, size_t len);
/* A file name from an option (MEMS_TRACE, MEMS_SWAP_FILE) with "%p" made
 * the pid, into out (len bytes, NUL included).  Returns its length. */
size_t opt_path(const char *in, char *out, size_t len);

#endif
