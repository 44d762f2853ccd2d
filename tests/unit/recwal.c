/* Description: the recordings' durability log: entries read back after a reopen, a torn
 * entry ends what is read, a new lap hides the old one, the wrap callback runs before the
 * log's start is overwritten, and a file that is not a log is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recwal.h"
#include "tap.h"

static int wraps;

static int on_wrap(void *arg)
{
	wraps++;
	return *(int *)arg;
}

/* The lines the log holds, as a string (static). */
static const char *read_back(struct recwal *w)
{
	static char out[1 << 17];
	char *p;
	size_t n;

	if (recwal_read(w, &p, &n) || n >= sizeof(out))
		return "(error)";
	memcpy(out, p ? p : "", n);
	out[n] = '\0';
	free(p);
	return out;
}

int main(void)
{
	char dir[] = "/tmp/sluice-recwal-test-XXXXXX", path[256], err[256], line[200];
	struct recwal *w;
	struct stat st;
	int i, fail = 0, fd;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/wal", dir);
	w = recwal_open(path, 1000, err, sizeof(err));
	ok(w != NULL, "a new log is created (%s)", w ? "" : err);
	ok(!stat(path, &st) && st.st_size == RECWAL_MIN_BYTES && (st.st_mode & 0777) == 0600,
	   "zero-filled to its (minimum) size, 0600");
	is_str(read_back(w), "", "a new log holds nothing");
	recwal_add(w, "{\"a\":1}\n", 8);
	recwal_add(w, "{\"b\":2}\n", 8);
	is_int(recwal_sync(w, on_wrap, &fail), 0, "a batch is written and synced");
	recwal_add(w, "{\"c\":3}\n", 8);
	is_int(recwal_sync(w, on_wrap, &fail), 0, "a second one");
	is_int(recwal_sync(w, on_wrap, &fail), 0, "nothing staged: nothing to do");
	recwal_close(w);

	w = recwal_open(path, 1 << 20, err, sizeof(err));
	ok(!stat(path, &st) && st.st_size == RECWAL_MIN_BYTES, "a reopened log keeps its size");
	is_str(read_back(w), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n", "its entries read back in order");
	recwal_close(w);

	fd = open(path, O_WRONLY); /* a torn second entry: its last data byte differs */
	pwrite(fd, "X", 1, 4096 + 24 + 16 + 24 + 7);
	close(fd);
	w = recwal_open(path, 0, err, sizeof(err));
	is_str(read_back(w), "{\"a\":1}\n{\"b\":2}\n", "a torn entry ends what is read");

	is_int(recwal_reset(w), 0, "a new lap");
	is_str(read_back(w), "", "... hides the old lap's entries");
	recwal_add(w, "{\"d\":4}\n", 8);
	recwal_sync(w, on_wrap, &fail);
	is_str(read_back(w), "{\"d\":4}\n", "... and the next entry is read alone");

	for (i = 0; i < (int)sizeof(line) - 2; i++)
		line[i] = 'x';
	line[sizeof(line) - 2] = '\n';
	for (i = 0; i < 400 && !wraps; i++) {
		recwal_add(w, line, sizeof(line) - 1);
		recwal_sync(w, on_wrap, &fail);
	}
	ok(wraps == 1 && i > 250, "the wrap callback runs when the log is full (after %d)", i);
	is_int((int)strlen(read_back(w)), (int)sizeof(line) - 1,
	       "after the wrap only the new lap's entry is read");
	fail = -EIO;
	for (i = 0; i < 400 && wraps < 2; i++) {
		recwal_add(w, line, sizeof(line) - 1);
		if (recwal_sync(w, on_wrap, &fail))
			break;
	}
	is_int(wraps, 2, "a failing wrap callback...");
	is_int(recwal_sync(w, on_wrap, &fail), 0, "... drops that batch (nothing staged after)");
	{
		static char big[RECWAL_MIN_BYTES];

		memset(big, 'y', sizeof(big));
		recwal_add(w, big, sizeof(big));
		is_int(recwal_sync(w, on_wrap, &fail), -EMSGSIZE, "a batch larger than the log: "
		       "-EMSGSIZE, for the caller to sync itself");
	}
	recwal_close(w);

	snprintf(path, sizeof(path), "%s/notalog", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	for (i = 0; i < 100; i++)
		write(fd, "not a log, someone's file\n", 26);
	close(fd);
	w = recwal_open(path, 0, err, sizeof(err));
	ok(w == NULL && strstr(err, "not a sluice durability log"), "another file is refused: %s",
	   err);
	ok(!stat(path, &st) && st.st_size == 2600, "... and left as it was");
	if (!tap_failed) {
		snprintf(path, sizeof(path), "rm -rf %s", dir);
		if (system(path))
			return 1;
	}
	return tap_done();
}
