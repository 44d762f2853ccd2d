/* Description: the recordings' durability log: entries read back after a reopen, a torn
 * entry ends what is read, reading starts at the tail and follows it into the next lap, the
 * writer catches up itself rather than write over what the tail has not passed, the syncer
 * moves the tail on, and a file that is not a log is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recwal.h"
#include "tap.h"

static char path[256];

/* Number of lines the log at <path> holds, read through a second handle; <first> gets the
 * first line's number ("{"n":N}"), -1 when none. */
static int lines_in(struct recwal *w, int *first)
{
	struct recwal *own = NULL;
	char *p, err[256];
	size_t n, i;
	int k = 0, e;

	if (!w && !(w = own = recwal_inspect(path, err, sizeof(err))))
		return -1;
	e = recwal_read(w, &p, &n);
	recwal_close(own);
	if (e)
		return -1;
	*first = n ? atoi(p + 5) : -1;
	for (i = 0; i < n; i++)
		k += p[i] == '\n';
	free(p);
	return k;
}

/* One entry holding line {"n":N} padded to 200 bytes. */
static int put(struct recwal *w, int n)
{
	char line[201];
	int k = snprintf(line, sizeof(line), "{\"n\":%d,\"pad\":\"", n);

	memset(line + k, '0', sizeof(line) - (size_t)k);
	line[198] = '"';
	line[199] = '}';
	line[200] = '\n';
	recwal_add(w, line, sizeof(line));
	return recwal_sync(w);
}

int main(void)
{
	char dir[] = "/tmp/sluice-recwal-test-XXXXXX", err[256];
	struct recwal *w, *r;
	struct recwal_pos mark;
	struct stat st;
	int i, n, fd, first, per_lap = (RECWAL_MIN_BYTES - 4096) / (24 + 208);

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/wal", dir);
	w = recwal_open(path, 1000, err, sizeof(err));
	ok(w != NULL, "a new log is created (%s)", w ? "" : err);
	ok(!stat(path, &st) && st.st_size == RECWAL_MIN_BYTES && (st.st_mode & 0777) == 0600,
	   "zero-filled to its (minimum) size, 0600");
	is_int(lines_in(w, &first), 0, "a new log holds nothing");
	for (i = 1; i <= 3; i++)
		is_int(put(w, i), 0, "entry %d written and synced", i);
	is_int(recwal_sync(w), 0, "nothing staged: nothing to do");
	recwal_close(w);

	w = recwal_open(path, 1 << 20, err, sizeof(err));
	ok(!stat(path, &st) && st.st_size == RECWAL_MIN_BYTES, "a reopened log keeps its size");
	if (!fork()) { /* another process: the log is locked */
		r = recwal_open(path, 0, err, sizeof(err));
		_exit(r == NULL && strstr(err, "another sluiced is recording") ? 0 : 1);
	}
	wait(&i);
	ok(WIFEXITED(i) && WEXITSTATUS(i) == 0, "another process cannot open a log that is open");
	ok(lines_in(w, &first) == 3 && first == 1, "its entries read back in order");
	recwal_close(w);

	fd = open(path, O_WRONLY); /* the third entry torn: its last byte differs */
	if (pwrite(fd, "X", 1, 4096 + 2 * 232 + 24 + 200) != 1)
		return 1;
	close(fd);
	w = recwal_open(path, 0, err, sizeof(err));
	ok(lines_in(w, &first) == 2 && first == 1, "a torn entry ends what is read");
	is_int(recwal_reset(w), 0, "a new lap");
	is_int(lines_in(w, &first), 0, "... hides the old lap's entries");

	for (i = 1; i <= 10; i++) {
		put(w, i);
		if (i == 4)
			recwal_mark(w, &mark);
	}
	is_int(recwal_cover(w, &mark), 0, "the tail moves past entry 4");
	n = lines_in(NULL, &first);
	ok(n == 6 && first == 5, "reading starts at the tail (%d entries from %d)", n, first);
	for (i = 11; i <= per_lap + 3; i++)
		put(w, i);
	n = lines_in(NULL, &first);
	ok(n == per_lap - 1 && first == 5,
	   "the writer wrapped over bytes behind the tail: the tail's lap, then the new one, are "
	   "read in order");

	for (i = per_lap + 4; i <= 3 * per_lap; i++)
		put(w, i);
	n = lines_in(NULL, &first);
	ok(n > 0 && first > per_lap,
	   "without a syncer, the writer caught up itself rather than write over entries the "
	   "tail had not passed (first entry read: %d)", first);

	is_int(recwal_start(w, 50), 0, "the syncer starts");
	for (i = 0; i < 5; i++)
		put(w, 1000 + i);
	for (i = 0; i < 500 && (n = lines_in(NULL, &first)); i++) /* up to 10 s under load */
		usleep(20 * 1000);
	is_int(n, 0, "... and moves the tail past what was written");
	{
		static char big[RECWAL_MIN_BYTES];

		memset(big, 'y', sizeof(big));
		recwal_add(w, big, sizeof(big));
		is_int(recwal_sync(w), -EMSGSIZE, "a batch larger than the log: -EMSGSIZE");
		is_int(recwal_catch_up(w), 0, "... for the caller to catch up itself");
	}
	recwal_close(w);

	snprintf(path, sizeof(path), "%s/notalog", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	for (i = 0; i < 100; i++)
		if (write(fd, "not a log, someone's file\n", 26) != 26)
			return 1;
	close(fd);
	r = recwal_open(path, 0, err, sizeof(err));
	ok(r == NULL && strstr(err, "not a sluice durability log"), "another file is refused: %s",
	   err);
	ok(!stat(path, &st) && st.st_size == 2600, "... and left as it was");
	if (!tap_failed) {
		snprintf(path, sizeof(path), "rm -rf %s", dir);
		if (system(path))
			return 1;
	}
	return tap_done();
}
