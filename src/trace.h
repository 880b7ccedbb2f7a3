/*
 * trace.h - fault trace records (the file format is in docs/TRACE.md).
 */
#ifndef MEMS_TRACE_H
#define MEMS_TRACE_H
#include <stdint.h>

#define MEMS_TRACE_MAGIC "MEMSTRC"     /* 8 bytes with its NUL */
#define MEMS_TRACE_VERSION 3     /* 2 added TRACE_ALLOC, 3 TRACE_AHEAD; older are read too */

enum {
	TRACE_READ = 1,     /* missing fault, read: zero page mapped */
	TRACE_WRITE = 2,    /* missing fault, write: zero-filled pages */
	TRACE_WP = 3,       /* write to a write-protected page (resident cap) */
	TRACE_RELEASE = 4,  /* pages given back on free */
	TRACE_EVICT = 5,    /* dirty pages written to the store and dropped */
	TRACE_PAGEIN = 6,   /* missing fault on evicted pages: read back in */
	TRACE_DROP = 7,     /* clean pages dropped (their copy is in the store) */
	TRACE_ALLOC = 8,    /* pages populated by the allocating thread, no fault */
	TRACE_AHEAD = 9,    /* pages populated ahead of a sequential stream by the
			       fault-ahead helper thread, no fault */
	TRACE_KIND_MAX = 9
};

struct mems_trace_header {         /* 64 bytes, little endian */
	char magic[8];             /* "MEMSTRC\0" */
	uint32_t version;          /* MEMS_TRACE_VERSION */
	uint32_t record_size;      /* sizeof(struct mems_trace_rec) */
	uint32_t page_size;        /* MeMS page size */
	uint32_t os_page_size;
	uint32_t pid;
	uint32_t flags;            /* bit 0: thread ids are recorded */
	uint64_t start_realtime_ns;/* CLOCK_REALTIME when the trace began */
	uint64_t span_base;        /* real address of MeMS virtual address 1000 */
	uint64_t reserved[2];
};

struct mems_trace_rec {            /* 56 bytes */
	uint64_t t_ns;             /* since the trace began (CLOCK_MONOTONIC) */
	uint64_t vaddr;            /* MeMS virtual address of the first page */
	uint64_t real;             /* its real address */
	uint64_t touched;          /* resident pages after the event */
	uint64_t mapped;           /* committed pages after the event */
	uint32_t tid;              /* faulting thread (0 for a release) */
	uint32_t pages;            /* pages populated, or given back */
	uint32_t latency_ns;       /* fault read -> resolved (0 for a release) */
	uint16_t kind;             /* TRACE_* */
	uint16_t reserved;
};

_Static_assert(sizeof(struct mems_trace_header) == 64, "trace header layout");
_Static_assert(sizeof(struct mems_trace_rec) == 56, "trace record layout");

#ifdef MEMS_LIBRARY
/* Start tracing into path ("%p" becomes the pid); 0 or -1 with errno. */
int trace_start(const char *path, uint64_t span_base, int thread_ids);
/* Write out what is buffered and close. */
void trace_stop(void);
/* In the child of fork(): forget the parent's trace (no writer thread). */
void trace_fork_child(void);
int trace_active(void);
uint64_t trace_now(void);
/* Record an event; never blocks (a full ring drops it and counts it). */
void trace_event(uint64_t t_ns, int kind, uint64_t off, uint32_t pages, uint32_t tid,
		 uint32_t latency_ns, uint64_t touched, uint64_t mapped);
uint64_t trace_dropped(void);
#endif

#endif
