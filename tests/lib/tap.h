/* tap.h - the tiny TAP harness every C unit test uses.
 *
 * A test is a standalone program: it prints "ok N - what" / "not ok N - what" lines and
 * exits 0 when every check passed, 1 when one failed, 77 when it cannot run here (with the
 * reason printed: e.g. not root, no cgroup v2), as liburing's tests do.
 */
#ifndef SLUICE_TAP_H
#define SLUICE_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
	tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

__attribute__((format(printf, 4, 5))) static inline int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", pass ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		printf("#   failed at %s:%d\n", file, line);
		tap_failed++;
	}
	return pass;
}

__attribute__((format(printf, 5, 6))) static inline int
tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int pass = got == want;

	printf("%sok %d - ", pass ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		printf("#   failed at %s:%d: got %lld, want %lld\n", file, line, got, want);
		tap_failed++;
	}
	return pass;
}

__attribute__((format(printf, 5, 6))) static inline int
tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int pass = got && want ? strcmp(got, want) == 0 : got == want;

	printf("%sok %d - ", pass ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		printf("#   failed at %s:%d:\n#     got:  \"%s\"\n#     want: \"%s\"\n", file, line,
		       got ? got : "(null)", want ? want : "(null)");
		tap_failed++;
	}
	return pass;
}

/* Skip the whole program: print why and exit 77. */
static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(77);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

/* Copy <len> bytes to the very end of a page followed by a PROT_NONE guard page, so that any
 * read past the input crashes the test (picohttpparser's trick). The returned buffer is valid
 * until the next call. */
static inline const char *tap_guarded(const void *src, size_t len)
{
	static char *region;
	static size_t region_len;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t need = ((len + pg - 1) / pg + 1) * pg;

	if (region)
		munmap(region, region_len);
	region_len = need + pg;
	region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	mprotect(region + need, pg, PROT_NONE);
	memcpy(region + need - len, src, len);
	return region + need - len;
}

#endif
