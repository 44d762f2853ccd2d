/* recwal.h - the recording store's durability log.
 *
 * Why: a record must be durable before its request is forwarded. fsync of an appended
 * segment changes the file's size, so every fsync is also a journal commit, which on a busy
 * machine waits for the journal thread to be scheduled (measured here: 3.3 ms per fsync with
 * the CPUs busy, against 0.1 ms for rewriting blocks that already exist). So the writer
 * appends records to the segments without syncing them, and makes each batch durable by
 * writing it once more into this log: a file of fixed size, zero-filled when created, that
 * is rewritten in place, so its fdatasync never changes metadata. One fdatasync covers every
 * stream of the batch.
 *
 * Layout (host byte order; the file never leaves the machine):
 *   [0, 4096)  header: "sluice-wal-v1\n\0\0", u64 lap, u32 crc32 of the 24 bytes before it
 *   4096...    entries of the current lap, back to back, 8-byte aligned:
 *              u32 magic "SWAL", u32 len, u64 lap, u32 crc32(header with crc 0, data), u32 0,
 *              then <len> bytes of record lines.
 * Before the log wraps to its start, the caller makes every segment durable (the wrap
 * callback); then the lap is increased in the header. So only the current lap's entries can
 * hold records a segment may have lost, and reading stops at the first entry that is not of
 * the current lap or whose crc does not match (a torn write, or an older lap's bytes). */
#ifndef SLUICE_RECWAL_H
#define SLUICE_RECWAL_H

#include <stddef.h>
#include <stdint.h>

#include "recjson.h"

#define RECWAL_DEFAULT_BYTES (64u << 20)
#define RECWAL_MIN_BYTES (64u << 10)

struct recwal;

/* Open the log at <path>, creating it (zero-filled to <bytes>, through a temporary file and
 * a rename) when missing. An existing log keeps its size. Returns the log or NULL with
 * <err> (a file that is not a log is refused, not overwritten). */
struct recwal *recwal_open(const char *path, size_t bytes, char *err, size_t errlen);

/* The record lines of the current lap's entries, in order, in a malloc'd buffer (free it).
 * Returns 0 or -errno. */
int recwal_read(struct recwal *w, char **lines, size_t *len);

/* Start a new lap (durably) and write from the log's start. Call once what the current lap
 * holds is durable elsewhere. Returns 0 or -errno. */
int recwal_reset(struct recwal *w);

/* Stage record lines for the next recwal_sync. Returns 0 or -ENOMEM. */
int recwal_add(struct recwal *w, const char *p, size_t len);

/* Forget what is staged (the caller makes it durable itself). */
void recwal_drop(struct recwal *w);

/* Write what is staged as one entry and fdatasync it. When the entry does not fit before the
 * log's end, <wrap>(<arg>) must make everything the log holds durable elsewhere first (a
 * nonzero return is returned). Returns 0, -EMSGSIZE (larger than the whole log: the staged
 * lines are dropped and the caller must make them durable itself) or -errno. */
int recwal_sync(struct recwal *w, int (*wrap)(void *arg), void *arg);

void recwal_close(struct recwal *w);

#endif
