/* recwal.c - the recording store's durability log (see recwal.h for why and the layout). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "recwal.h"

#define HDR_BYTES 4096
#define MAGIC "sluice-wal-v1\n\0\0"
#define ENTRY_MAGIC 0x4c415753u /* "SWAL" */

struct entry_hdr {
	uint32_t magic, len;
	uint64_t lap;
	uint32_t crc, zero;
};

struct file_hdr {
	char magic[16];
	uint64_t lap;
	uint32_t crc;
};

struct recwal {
	int fd;
	size_t size;          /* the file's fixed size */
	uint64_t lap;
	size_t pos;           /* where the next entry goes */
	struct recjson_buf staged;
};

static uint32_t crc(const void *p, size_t n, uint32_t c)
{
	return (uint32_t)crc32(c, p, (uInt)n);
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static int pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	ssize_t k;

	while (n) {
		k = pwrite(fd, p, n, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p = (const char *)p + k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

static int write_header(int fd, uint64_t lap)
{
	struct file_hdr h;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, sizeof(h.magic));
	h.lap = lap;
	h.crc = crc(&h, offsetof(struct file_hdr, crc), 0);
	return pwrite_all(fd, &h, sizeof(h), 0);
}

/* Create <path> zero-filled to <bytes>, lap 1, through <path>.tmp. Returns 0 or -errno. */
static int create(const char *path, size_t bytes)
{
	static const char zero[1 << 16];
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	size_t off;
	int fd, e = 0, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (off = 0; off < bytes && !e; off += sizeof(zero))
		e = pwrite_all(fd, zero, bytes - off < sizeof(zero) ? bytes - off : sizeof(zero),
			       (off_t)off);
	if (!e)
		e = write_header(fd, 1);
	if (!e && fsync(fd))
		e = -errno;
	close(fd);
	if (!e && rename(tmp, path))
		e = -errno;
	if (e) {
		unlink(tmp);
		return e;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		e = -errno;
	if (dfd >= 0)
		close(dfd);
	return e;
}

struct recwal *recwal_open(const char *path, size_t bytes, char *err, size_t errlen)
{
	struct recwal *w = calloc(1, sizeof(*w));
	struct file_hdr h;
	struct stat st;
	int e;

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->fd = -1;
	bytes = align8(bytes < RECWAL_MIN_BYTES ? RECWAL_MIN_BYTES : bytes);
	if (access(path, F_OK) && errno == ENOENT && (e = create(path, bytes))) {
		snprintf(err, errlen, "cannot create the recordings' durability log %s (%zu bytes): "
			 "%s; free space there or set a smaller record.wal_bytes", path, bytes,
			 strerror(-e));
		goto fail;
	}
	w->fd = open(path, O_RDWR | O_CLOEXEC);
	if (w->fd < 0 || fstat(w->fd, &st)) {
		snprintf(err, errlen, "cannot open the recordings' durability log %s: %s", path,
			 strerror(errno));
		goto fail;
	}
	if (pread(w->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, MAGIC, sizeof(h.magic)) ||
	    h.crc != crc(&h, offsetof(struct file_hdr, crc), 0) ||
	    st.st_size < (off_t)RECWAL_MIN_BYTES || st.st_size % 8) {
		snprintf(err, errlen, "%s is not a sluice durability log (bad header or size); "
			 "it is left as it is: move it away if it is not needed, then restart",
			 path);
		goto fail;
	}
	w->size = (size_t)st.st_size;
	w->lap = h.lap;
	w->pos = HDR_BYTES;
	return w;
fail:
	if (w->fd >= 0)
		close(w->fd);
	free(w);
	return NULL;
}

int recwal_read(struct recwal *w, char **lines, size_t *len)
{
	struct recjson_buf out = { 0 };
	struct entry_hdr h;
	size_t off = HDR_BYTES;
	char *data = NULL;
	uint32_t c;
	int e = 0;

	*lines = NULL;
	*len = 0;
	while (off + sizeof(h) <= w->size) {
		if (pread(w->fd, &h, sizeof(h), (off_t)off) != (ssize_t)sizeof(h))
			break;
		if (h.magic != ENTRY_MAGIC || h.lap != w->lap || h.zero ||
		    h.len > w->size - off - sizeof(h))
			break;
		free(data);
		if (!(data = malloc(h.len ? h.len : 1))) {
			e = -ENOMEM;
			break;
		}
		if (pread(w->fd, data, h.len, (off_t)(off + sizeof(h))) != (ssize_t)h.len)
			break;
		c = h.crc;
		h.crc = 0;
		if (crc(data, h.len, crc(&h, sizeof(h), 0)) != c)
			break;
		if ((e = recjson_raw(&out, data, h.len)))
			break;
		off += align8(sizeof(h) + h.len);
	}
	free(data);
	if (e) {
		recjson_free(&out);
		return e;
	}
	*lines = out.p;
	*len = out.len;
	return 0;
}

int recwal_reset(struct recwal *w)
{
	int e = write_header(w->fd, w->lap + 1);

	if (!e && fdatasync(w->fd))
		e = -errno;
	if (e)
		return e;
	w->lap++;
	w->pos = HDR_BYTES;
	return 0;
}

int recwal_add(struct recwal *w, const char *p, size_t len)
{
	return recjson_raw(&w->staged, p, len);
}

void recwal_drop(struct recwal *w)
{
	w->staged.len = 0;
}

int recwal_sync(struct recwal *w, int (*wrap)(void *arg), void *arg)
{
	static const char pad[8];
	struct entry_hdr h = { ENTRY_MAGIC, 0, 0, 0, 0 };
	size_t len = w->staged.len, need = align8(sizeof(h) + len);
	struct iovec iov[3];
	ssize_t k;
	int e;

	if (!len)
		return 0;
	w->staged.len = 0;
	if (need > w->size - HDR_BYTES || len > UINT32_MAX)
		return -EMSGSIZE;
	if (w->pos + need > w->size) {
		if ((e = wrap(arg)) || (e = recwal_reset(w)))
			return e;
	}
	h.len = (uint32_t)len;
	h.lap = w->lap;
	h.crc = crc(w->staged.p, len, crc(&h, sizeof(h), 0));
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ w->staged.p, len };
	iov[2] = (struct iovec){ (void *)pad, need - sizeof(h) - len };
	do
		k = pwritev(w->fd, iov, 3, (off_t)w->pos);
	while (k < 0 && errno == EINTR);
	if (k != (ssize_t)need) /* a short write into space that exists: the disk is failing */
		return k < 0 ? -errno : -EIO;
	if (fdatasync(w->fd))
		return -errno;
	w->pos += need;
	return 0;
}

void recwal_close(struct recwal *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	recjson_free(&w->staged);
	free(w);
}
