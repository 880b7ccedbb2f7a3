/*
 * options.c - the one table of options.
 *
 * Every option has a name, a MEMS_<NAME> environment variable, a kind
 * (size with K/M/G/T suffixes, integer, boolean, choice), a default and a
 * range.  The environment is read when MeMS initialises (and on first use
 * before that); a value set through mems_option_set() wins over it.  A
 * malformed value is never taken silently: the API call fails with EINVAL
 * and a message, and a malformed environment variable is reported on
 * stderr with the value kept instead.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "diag.h"
#include "mems.h"

enum kind { K_SIZE, K_INT, K_BOOL, K_CHOICE, K_STRING };

static const char *const pager_choices[] = { "auto", "uffd", "uffd-user", "kernel", NULL };
static const char *const policy_choices[] = { "clock", "fifo", NULL };

static const struct opt_def {
	const char *name;
	enum kind kind;
	int64_t def, min, max;
	const char *const *choices;
	int zero_ok;               /* 0 is allowed below min: "off" */
} defs[OPT_COUNT] = {
	[OPT_PAGER] = { "pager", K_CHOICE, 0, 0, 3, pager_choices, 0 },
	[OPT_SPAN_SIZE] = { "span_size", K_SIZE, 64ll << 30, SPAN_MIN, 16ll << 40, NULL, 0 },
	[OPT_FAULT_AROUND] = { "fault_around", K_INT, 256, 1, 512, NULL, 0 },
	[OPT_ABORT_ON_ERROR] = { "abort_on_error", K_BOOL, 0, 0, 1, NULL, 0 },
	[OPT_HANDLER_SPIN] = { "handler_spin", K_INT, 50, 0, 10000, NULL, 0 },
	[OPT_STATS_ON_EXIT] = { "stats_on_exit", K_BOOL, 0, 0, 1, NULL, 0 },
	[OPT_TRACE] = { "trace", K_STRING, 0, 0, 0, NULL, 0 },
	[OPT_RESIDENT_MAX] = { "resident_max", K_SIZE, 0, 1ll << 20, 16ll << 40, NULL, 1 },
	[OPT_SWAP_FILE] = { "swap_file", K_STRING, 0, 0, 0, NULL, 0 },
	[OPT_EVICT_POLICY] = { "evict_policy", K_CHOICE, 0, 0, 1, policy_choices, 0 },
	[OPT_FAIL] = { "fail", K_STRING, 0, 0, 0, NULL, 0 },
	[OPT_PURGE_DELAY] = { "purge_delay", K_INT, 0, -1, 60000, NULL, 0 },
	[OPT_SMALL_RUNS] = { "small_runs", K_BOOL, 0, 0, 1, NULL, 0 },
	[OPT_POPULATE] = { "populate", K_SIZE, 0, 4096, 1ll << 30, NULL, 1 },
	[OPT_FAULT_AHEAD] = { "fault_ahead", K_BOOL, 1, 0, 1, NULL, 0 },
};

static pthread_mutex_t opt_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t env_value[OPT_COUNT], api_value[OPT_COUNT];
static int env_given[OPT_COUNT];   /* a valid MEMS_* value was in the environment */
#define STR_MAX 1024
static char env_str[OPT_COUNT][STR_MAX], api_str[OPT_COUNT][STR_MAX];
static int api_set[OPT_COUNT];
static atomic_int loaded;

/* Defined in preload.c only: libmems-preload.so's own defaults. */
extern const int mems_preload_library __attribute__((weak, visibility("hidden")));
#define PRELOAD_PURGE_DELAY 100   /* ms: see docs/PERFORMANCE.md */
#define PRELOAD_POPULATE (64 << 10) /* bytes: see docs/PERFORMANCE.md */

static int64_t def_of(int i)
{
	if (i == OPT_PURGE_DELAY && &mems_preload_library)
		return PRELOAD_PURGE_DELAY;
	if (i == OPT_SMALL_RUNS && &mems_preload_library)
		return 1;
	if (i == OPT_POPULATE && &mems_preload_library)
		return PRELOAD_POPULATE;
	return defs[i].def;
}

/* ---------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------- */

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	int shift = 0;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	}
	if (shift) {
		end++;
		if (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))
			end += strlen(end);
	} else if (!strcasecmp(end, "B")) {
		end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> 1) >> shift) || v > INT64_MAX)
		return -1;
	*out = (int64_t)(v << shift);
	return 0;
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, int64_t *out)
{
	static const char *const yes[] = { "1", "yes", "true", "on", NULL };
	static const char *const no[] = { "0", "no", "false", "off", NULL };
	for (int i = 0; yes[i]; i++) {
		if (!strcasecmp(s, yes[i])) { *out = 1; return 0; }
		if (!strcasecmp(s, no[i])) { *out = 0; return 0; }
	}
	return -1;
}

static int parse_choice(const struct opt_def *d, const char *s, int64_t *out)
{
	for (int i = 0; d->choices[i]; i++)
		if (!strcasecmp(s, d->choices[i])) {
			*out = i;
			return 0;
		}
	return -1;
}

static int render(const struct opt_def *d, int64_t v, char *buf, size_t len);

static const char *expected(const struct opt_def *d, char *buf, size_t len)
{
	char lo[32], hi[32];
	switch (d->kind) {
	case K_SIZE:
		render(d, d->min, lo, sizeof lo);
		render(d, d->max, hi, sizeof hi);
		snprintf(buf, len, "%sa size from %s to %s "
			 "(a number with an optional K, M, G or T suffix)",
			 d->zero_ok ? "0 (off) or " : "", lo, hi);
		break;
	case K_INT:
		snprintf(buf, len, "an integer from %" PRId64 " to %" PRId64, d->min, d->max);
		break;
	case K_BOOL:
		snprintf(buf, len, "a boolean (1/0, yes/no, true/false, on/off)");
		break;
	case K_STRING:
		snprintf(buf, len, "at most %d characters", STR_MAX - 1);
		break;
	case K_CHOICE: {
		size_t n = (size_t)snprintf(buf, len, "one of");
		for (int i = 0; d->choices[i] && n < len; i++)
			n += (size_t)snprintf(buf + n, len - n, "%s %s", i ? "," : "",
					      d->choices[i]);
		break;
	}
	}
	return buf;
}

static int render(const struct opt_def *d, int64_t v, char *buf, size_t len)
{
	if (d->kind == K_STRING)
		return snprintf(buf, len, "%s", v ? api_str[d - defs] : env_str[d - defs]);
	if (d->kind == K_CHOICE)
		return snprintf(buf, len, "%s", d->choices[v]);
	if (d->kind == K_SIZE) {
		static const char suf[] = "KMGT";
		int k = -1;
		while (k < 3 && v && !(v & 1023)) {
			v >>= 10;
			k++;
		}
		if (k >= 0)
			return snprintf(buf, len, "%" PRId64 "%c", v, suf[k]);
	}
	return snprintf(buf, len, "%" PRId64, v);
}

/* 0 and *out, or -1 with a message: `who`="s": expected ...`then`. */
static int parse(const struct opt_def *d, const char *who, const char *s,
		 int64_t *out, const char *then)
{
	int rc;
	switch (d->kind) {
	case K_STRING: *out = 0; rc = strlen(s) < STR_MAX ? 0 : -1; break;
	case K_SIZE: rc = parse_size(s, out); break;
	case K_INT: rc = parse_int(s, out); break;
	case K_BOOL: rc = parse_bool(s, out); break;
	default: rc = parse_choice(d, s, out); break;
	}
	if (rc == 0 && (*out < d->min || *out > d->max) && !(d->zero_ok && *out == 0))
		rc = -1;
	if (rc != 0) {
		char buf[160];
		mems_diag("%s=\"%s\": expected %s%s", who, s,
			  expected(d, buf, sizeof buf), then);
	}
	return rc;
}

static int find(const char *name)
{
	if (!name)
		return -1;
	if (!strncasecmp(name, "MEMS_", 5))
		name += 5;
	for (int i = 0; i < OPT_COUNT; i++)
		if (!strcasecmp(name, defs[i].name))
			return i;
	return -1;
}

/* ---------------------------------------------------------------------
 * Internal interface
 * ------------------------------------------------------------------- */

void opts_load(void)
{
	pthread_mutex_lock(&opt_lock);
	for (int i = 0; i < OPT_COUNT; i++) {
		char var[64];
		snprintf(var, sizeof var, "MEMS_%s", defs[i].name);
		for (char *c = var; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		const char *s = getenv(var);
		int64_t v = def_of(i);
		char then[80], def[32];
		render(&defs[i], v, def, sizeof def);
		snprintf(then, sizeof then, "; using the default, %s", def);
		env_given[i] = s && parse(&defs[i], var, s, &v, then) == 0;
		if (!env_given[i])
			v = def_of(i);
		env_value[i] = v;
		if (defs[i].kind == K_STRING)
			snprintf(env_str[i], STR_MAX, "%s", s && strlen(s) < STR_MAX ? s : "");
	}
	atomic_store(&loaded, 1);
	pthread_mutex_unlock(&opt_lock);
}

int64_t opt_int(enum mems_opt o)
{
	if (!atomic_load(&loaded))
		opts_load();
	pthread_mutex_lock(&opt_lock);
	int64_t v = api_set[o] ? api_value[o] : env_value[o];
	pthread_mutex_unlock(&opt_lock);
	return v;
}

int opt_given(enum mems_opt o)
{
	if (!atomic_load(&loaded))
		opts_load();
	pthread_mutex_lock(&opt_lock);
	int given = api_set[o] || env_given[o];
	pthread_mutex_unlock(&opt_lock);
	return given;
}

void opt_str(enum mems_opt o, char *buf, size_t len)
{
	if (!atomic_load(&loaded))
		opts_load();
	pthread_mutex_lock(&opt_lock);
	snprintf(buf, len, "%s", api_set[o] ? api_str[o] : env_str[o]);
	pthread_mutex_unlock(&opt_lock);
}

size_t opt_path(const char *in, char *out, size_t len)
{
	size_t n = 0;
	for (; *in && n + 1 < len; in++) {
		if (in[0] == '%' && in[1] == 'p') {
			int w = snprintf(out + n, len - n, "%d", (int)getpid());
			n = w > 0 && (size_t)w < len - n ? n + (size_t)w : len - 1;
			in++;
		} else {
			out[n++] = *in;
		}
	}
	out[n] = 0;
	return n;
}

const char *opt_choice(enum mems_opt o)
{
	return defs[o].choices[opt_int(o)];
}

/* ---------------------------------------------------------------------
 * Public interface
 * ------------------------------------------------------------------- */

int mems_option_set(const char *name, const char *value)
{
	int i = find(name);
	int64_t v;

	if (i < 0) {
		mems_diag("unknown option \"%s\"", name ? name : "(null)");
		errno = ENOENT;
		return -1;
	}
	if (!value || parse(&defs[i], defs[i].name, value, &v, "") != 0) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&opt_lock);
	api_value[i] = v;
	api_set[i] = 1;
	if (defs[i].kind == K_STRING) {
		snprintf(api_str[i], STR_MAX, "%s", value);
		api_value[i] = 1;           /* render() reads the API's string */
	}
	pthread_mutex_unlock(&opt_lock);
	return 0;
}

int mems_option_get(const char *name, char *buf, size_t len)
{
	int i = find(name);
	if (i < 0) {
		errno = ENOENT;
		return -1;
	}
	return render(&defs[i], opt_int((enum mems_opt)i), buf, len);
}

void mems_option_reset(void)
{
	pthread_mutex_lock(&opt_lock);
	memset(api_set, 0, sizeof api_set);
	pthread_mutex_unlock(&opt_lock);
}
