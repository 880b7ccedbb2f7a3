/*
 * fail.h - fault injection for the tests (MEMS_FAIL=point:nth[,...]).
 */
#ifndef MEMS_FAIL_H
#define MEMS_FAIL_H

enum fail_point {
	FP_MMAP,          /* os_reserve, os_map_meta: ENOMEM */
	FP_MPROTECT,      /* os_commit, os_decommit: ENOMEM */
	FP_MADVISE,       /* os_release: EAGAIN */
	FP_UFFD_API,      /* UFFDIO_API on the descriptor kept: EINVAL */
	FP_UFFD_REGISTER, /* UFFDIO_REGISTER: EPERM */
	FP_UFFD_COPY,     /* UFFDIO_COPY / UFFDIO_ZEROPAGE: ENOMEM */
	FP_AHEAD_COPY,    /* UFFDIO_COPY of the fault-ahead helper: ENOMEM */
	FP_UFFD_WP,       /* UFFDIO_WRITEPROTECT: ENOMEM */
	FP_URING_INIT,    /* io_uring_queue_init: ENOMEM */
	FP_URING_WRITE,   /* a store write request: EIO */
	FP_URING_READ,    /* a store read request: EIO */
	FP_THREAD,        /* os_thread_start: EAGAIN */
	FP_COUNT
};

/* 0, or the errno value this call of point p must fail with. */
int fail_now(enum fail_point p);
/* Arm the points of spec ("" disarms all), counting calls afresh: a list
 * of point:N (the Nth call fails) or point:N+ (the Nth and every later
 * call fails).  0, or -1 with a message for a malformed spec. */
int fail_setup(const char *spec);

#endif
