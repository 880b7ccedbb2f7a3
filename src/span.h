/*
 * span.h - the OS layer: every mmap, mprotect, madvise and mincore of MeMS,
 * its clock and the start of its own threads,
 * goes through here (the userfaultfd ioctls live in pager.c).
 */
#ifndef MEMS_SPAN_H
#define MEMS_SPAN_H
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

size_t os_page_size(void);

/* Address space only: PROT_NONE, MAP_NORESERVE, starting on a multiple of
 * align (a power of two) when there is room for the slack that takes, on
 * a page otherwise.  NULL on failure (errno). */
void *os_reserve(size_t len, size_t align);
/* Bytes of address space the process may still map under its limit
 * (RLIMIT_AS, ulimit -v), or UINT64_MAX when it has none; *limit gets the
 * limit (UINT64_MAX for none). */
uint64_t os_address_room(uint64_t *limit);
/* MeMS's descriptors in the program's table, which a program may close
 * and open files of its own under.  os_fd_note records what fd refers to
 * (device and inode) and returns it; os_fd_mine says whether fd still
 * refers to it; os_fd_mine_as whether fd refers to the file noted under
 * the number noted; os_fd_close closes fd only while it is MeMS's, and
 * forgets it either way; os_fd_forget forgets it.  Only for files with an
 * inode of their own (not eventfds, which share one).  Notes are made and
 * forgotten under the allocator lock or in a fork child, and read from
 * anywhere. */
int os_fd_note(int fd);
int os_fd_mine(int fd);
int os_fd_mine_as(int fd, int noted);
void os_fd_close(int fd);
void os_fd_forget(int fd);
/* Give the calling thread, one of MeMS's, a descriptor table of its own
 * that holds keep[0..n) (entries < 0 skipped) and nothing else.  A program
 * that closes every descriptor (daemons and ssh do) then cannot close the
 * files MeMS's threads work with, nor make them read or write a file of
 * its own opened under the same number; and the program's files are not
 * held open by MeMS.  0, or -1 (errno) when the thread goes on sharing
 * the program's table (close_range(2) or unshare(2) missing or refused). */
int os_own_fds(const int *keep, int n);
/* The descriptor to write diagnostics to from this thread: STDERR_FILENO,
 * or in a thread with a table of its own a copy of the program's fd 2
 * (pidfd_getfd(2)), which os_put_stderr() closes; -1 when there is none. */
int os_get_stderr(void);
void os_put_stderr(int fd);
/* Read/write anonymous memory for metadata, populated lazily by the kernel
 * (never registered with userfaultfd).  NULL on failure (errno). */
void *os_map_meta(size_t len);
int os_unmap(void *p, size_t len);
/* Replace [p, p+len) with a fresh reservation: its pages and its
 * userfaultfd registration go, the address range stays taken.  0 or -1. */
int os_rereserve(void *p, size_t len);

/* Make [p, p+len) read/write (commit) or inaccessible again (decommit). */
int os_commit(void *p, size_t len);
int os_decommit(void *p, size_t len);
/* Give the pages back to the kernel (MADV_DONTNEED); the mapping stays. */
int os_release(void *p, size_t len);
/* Number of resident pages in [p, p+len), by mincore(2); -1 on error. */
int64_t os_resident_pages(void *p, size_t len);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t os_now_ns(void);
/* Start one of MeMS's own threads with every signal blocked: signals meant
 * for the program must never run its handlers there.  With nkeep >= 0 it
 * holds keep[0..nkeep) in a descriptor table of its own (os_own_fds)
 * before this returns.  0 or an errno. */
int os_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const int *keep, int nkeep);

#endif
