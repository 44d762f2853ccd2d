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
 *   [0, 4096)  header: "sluice-wal-v2\n\0\0", u64 tail lap, u64 tail offset, u32 crc32 of
 *              the 32 bytes before it
 *   4096...    entries, back to back, 8-byte aligned, wrapping to 4096 at the end with the
 *              lap number increased:
 *              u32 magic "SWAL", u32 len, u64 lap, u32 crc32(header with crc 0, data), u32 0,
 *              then <len> bytes of record lines.
 * The tail is where the records start that may not be durable in the segments yet: the
 * syncer thread moves it on (recwal_cover) after making everything before a mark durable
 * (the caller's sync function: an fsync of each segment written since the last one). An entry is never written
 * over bytes the tail has not passed: when it would be, recwal_sync catches up first. Reading starts at the tail, goes to the end of the tail's lap and on
 * from the start in the next lap, and stops at the first entry that is not of the lap
 * expected or whose crc does not match (a torn write, or an older lap's bytes). */
#ifndef SLUICE_RECWAL_H
#define SLUICE_RECWAL_H

#include <stddef.h>
#include <stdint.h>

#include "recjson.h"

#define RECWAL_DEFAULT_BYTES (64u << 20)
#define RECWAL_MIN_BYTES (64u << 10)

struct recwal;

/* Open the log at <path>, creating it (zero-filled to <bytes>, through a temporary file and
 * a rename) when missing, and lock it (flock, exclusive) for as long as it is open: one
 * store writer per directory. An existing log keeps its size. Returns the log or NULL with
 * <err> (a file that is not a log, or a log another process holds, is refused). */
struct recwal *recwal_open(const char *path, size_t bytes, char *err, size_t errlen);

/* Open an existing log read-only and unlocked, for recwal_read only (while a writer may be
 * at work: what it reads is a snapshot, possibly ending in an entry being written). */
struct recwal *recwal_inspect(const char *path, char *err, size_t errlen);

/* The record lines of the current lap's entries, in order, in a malloc'd buffer (free it).
 * Returns 0 or -errno. */
int recwal_read(struct recwal *w, char **lines, size_t *len);

/* Start a new lap (durably) with the tail at the log's start. Call once what the log holds
 * is durable elsewhere (after recwal_read, before the first recwal_sync). Returns 0 or
 * -errno. */
int recwal_reset(struct recwal *w);

/* Where the next entry goes (a mark for recwal_cover). Thread-safe. */
struct recwal_pos {
	uint64_t lap, off;
};
void recwal_mark(struct recwal *w, struct recwal_pos *at);

/* Everything written before mark <at> is durable elsewhere: move the tail there (durably:
 * the header is rewritten and fdatasync'd). Thread-safe; a mark behind the tail is a no-op.
 * Returns 0 or -errno. */
int recwal_cover(struct recwal *w, const struct recwal_pos *at);

/* Stage record lines for the next recwal_sync. Returns 0 or -ENOMEM. */
int recwal_add(struct recwal *w, const char *p, size_t len);

/* Forget what is staged (the caller makes it durable itself). */
void recwal_drop(struct recwal *w);

/* Write what is staged as one entry and fdatasync it. When the entry would go over bytes the
 * tail has not passed (the syncer is behind), recwal_catch_up runs first. Returns 0,
 * -EMSGSIZE (larger than the whole log: the staged lines are dropped and the caller must
 * make them durable itself, e.g. with recwal_catch_up), or -errno (also the syncer's
 * failure, for good). Called from one thread at a time. */
int recwal_sync(struct recwal *w);

/* How to make durable what was written elsewhere before the log's entries (called from the
 * syncer and the writer, one at a time; 0 or -errno). Default: syncfs of the log's
 * filesystem. Set it before recwal_start. */
void recwal_set_sync(struct recwal *w, int (*fn)(void *arg), void *arg);

/* Make everything written so far durable where it belongs (the sync function) and move
 * the tail past it. Returns 0 or -errno. */
int recwal_catch_up(struct recwal *w);

/* Start the syncer thread: <period_ms> after entries were first written since the last
 * cover (at once when the writer is 1/32 of the log ahead of the tail), recwal_catch_up;
 * asleep while nothing is written. Call after recwal_reset. recwal_close stops it.
 * Returns 0 or -errno. */
int recwal_start(struct recwal *w, int period_ms);

void recwal_close(struct recwal *w);

#endif
