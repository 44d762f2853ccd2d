/* recverify.h - offline checks of session recordings (record.h's format) and the auditors'
 * sluicectl commands: sessions, replay, export, verify. Nothing here needs the daemon or the
 * private key (export signs its manifest only when the key is readable). Commands take the
 * arguments after their name and return the exit status: 0 success, 1 the thing checked is
 * false, 2 usage or I/O error. */
#ifndef SLUICE_RECVERIFY_H
#define SLUICE_RECVERIFY_H

#include <jansson.h>

#define RECV_DEFAULT_DIR "/var/lib/sluice/recordings"
#define RECV_MAX_PROBLEMS 50 /* problems listed in a report */

/* Verify <path>: a store directory (every stream in it), one stream directory, an export
 * bundle (directory with MANIFEST.sha256), or one .jsonl file. <pubkey_path> NULL: the
 * record.pub of the bundle or store (beside or above <path>). Sets *report (caller decrefs)
 * to {"ok", "path", "key_id", "streams": [{"stream", "records", "first_seq", "last_seq",
 * "checkpoints", "signed_through", "unsigned_tail", "partial", "ok"}], "problems": [{"kind",
 * "file", "line", "seq", "detail"}] (first bad record first), "first_problem"}. Kinds:
 * malformed, modified, deleted, reordered, inserted, truncated, moved, bad_signature.
 * Returns 0 intact, -EBADMSG not intact, or another -errno (I/O; "error" in the report). */
int rec_verify_path(const char *path, const char *pubkey_path, json_t **report);

/* sluicectl verify FILE|DIR [--pubkey F] [--json]: 0 intact, 1 not (the first bad record
 * and what is wrong with it are named), 2 usage or I/O error. */
int rec_cmd_verify(int argc, char **argv);

/* sluicectl sessions [--dir D] [--container C] [--since T] [--until T] [--json]: one line
 * per stream with its first and last time, records, requests and denials. */
int rec_cmd_sessions(int argc, char **argv);

/* sluicectl replay ID [--dir D] [--speed N | --step] [--json]: a stream as a timeline. */
int rec_cmd_replay(int argc, char **argv);

/* sluicectl export --container C [--dir D] [--since T] [--until T] [--key F] -o DIR: a
 * self-contained bundle checkable with sha256sum and openssl alone. */
int rec_cmd_export(int argc, char **argv);

#endif
