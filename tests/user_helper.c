/*
 * user_helper.c - the ordinary-user path, run by check_api.c under
 * setpriv --reuid=nobody: the pager must fall back to user-mode-only
 * userfaultfd, and read(2)/pread(2) into fresh MeMS memory must work.
 *
 * Usage: user_helper FILE EXPECTED_MODE [--close-all]   (exit 0 when all
 *        holds; --close-all: first close every descriptor above 2, as
 *        daemons do, MeMS's own among them, and open FILE again under the
 *        lowest free number, which was MeMS's)
 *        user_helper --force-uffd         (MEMS_PAGER=uffd must fail cleanly)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mems.h"

#define FAIL(...) do { fprintf(stderr, "user_helper: " __VA_ARGS__); \
		       fputc('\n', stderr); return 1; } while (0)

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--force-uffd")) {
		mems_option_set("pager", "uffd");
		errno = 0;
		if (mems_try_init() == 0)
			FAIL("MEMS_PAGER=uffd started for uid %d", (int)getuid());
		if (mems_malloc(10) != NULL || errno != ENOMEM)
			FAIL("mems_malloc after a failed init did not fail with ENOMEM");
		return 0;
	}
	int close_all = argc == 4 && !strcmp(argv[3], "--close-all");
	if (argc != 3 && !close_all)
		FAIL("usage: user_helper FILE MODE [--close-all] | --force-uffd");
	if (getuid() == 0)
		FAIL("running as root: the ordinary-user path is not tested");

	int fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		FAIL("open %s: %s", argv[1], strerror(errno));
	off_t len = lseek(fd, 0, SEEK_END);
	char *ref = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (ref == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));

	mems_init();
	struct mems_stats st;
	mems_stats_get(&st);
	if (strcmp(st.mode_name, argv[2]))
		FAIL("mode %s (%s), expected %s", st.mode_name, st.mode_reason, argv[2]);
	if (close_all) {
		if (syscall(SYS_close_range, 3, ~0u, 0) != 0)
			FAIL("close_range: %s", strerror(errno));
		if ((fd = open(argv[1], O_RDONLY)) != 3)
			FAIL("open %s again: %d (%s)", argv[1], fd, strerror(errno));
	}

	for (int round = 0; round < 20; round++) {
		/* fresh memory each round, some of it released and reused */
		char *v = mems_malloc((size_t)len + (size_t)round * 1000);
		char *p = mems_get(v);
		if (!p)
			FAIL("mems_malloc/mems_get failed");
		ssize_t got = round % 2 ? pread(fd, p, (size_t)len, 0)
					: (lseek(fd, 0, SEEK_SET), read(fd, p, (size_t)len));
		if (got != len)
			FAIL("round %d: read into fresh MeMS memory: %zd (%s)", round, got,
			     got < 0 ? strerror(errno) : "short");
		if (memcmp(p, ref, (size_t)len))
			FAIL("round %d: data differs", round);
		if (round % 3 == 0)
			mems_free(v);
	}
	mems_stats_get(&st);
	printf("mode=%s touched=%lu mapped=%lu\n", st.mode_name,
	       (unsigned long)st.pages_touched, (unsigned long)st.pages_mapped);
	mems_finish();
	return 0;
}
