/* reckey.h - the recording store's Ed25519 signing key: it signs the checkpoints of every
 * stream (record.c), and auditors check them against its public key (recverify.c). */
#ifndef SLUICE_RECKEY_H
#define SLUICE_RECKEY_H

#include <stddef.h>

struct evp_pkey_st;

/* Create an Ed25519 key pair: <key_path> (0600, never overwritten, never half-written) and
 * its public key (0644) at
 * <pub_path> (NULL: derived as rec_pub_path does). Returns 0, -EEXIST, or -errno with
 * <err>. */
int rec_key_init(const char *key_path, const char *pub_path, char *err, size_t errlen);

/* The store's key <key> loaded from <key_path> has its public key beside it: written now if a
 * crash came between the two files. Returns 0 or -errno with <err>. */
int rec_pub_repair(const char *key_path, struct evp_pkey_st *key, char *err, size_t errlen);

/* The public key path beside <key_path>: "x.key" gives "x.pub", anything else "<path>.pub". */
void rec_pub_path(const char *key_path, char *out, size_t outlen);

/* Load an Ed25519 private key, refusing a file readable or writable by group or others.
 * Returns it (EVP_PKEY_free) or NULL with <err>. */
struct evp_pkey_st *rec_load_private(const char *path, char *err, size_t errlen);

/* Load a public (or private) Ed25519 key from PEM <path>. Returns it (EVP_PKEY_free) or
 * NULL with <err>. */
struct evp_pkey_st *rec_load_pubkey(const char *path, char *err, size_t errlen);

/* Key id of an Ed25519 key: the first 16 hex digits of SHA-256 of its 32 raw public
 * bytes. Returns 0 or -EINVAL. */
int rec_key_id(struct evp_pkey_st *key, char out[17]);

/* Sign <msg> into base64 <b64> (89 bytes). Returns 0 or -EIO. */
int rec_sign_b64(struct evp_pkey_st *key, const char *msg, size_t msglen, char *b64);

/* Verify a base64 Ed25519 signature over <msg>. Returns 1 valid, 0 not. */
int rec_sig_verify(struct evp_pkey_st *key, const char *msg, size_t msglen, const char *b64);

/* sluicectl record init [--dir D] [--key F]: create the store's signing key (default
 * <dir>/record.key, dir default /var/lib/sluice/recordings) and print its key id. argv[0]
 * is "init". Returns the exit status. */
int rec_cmd_init(int argc, char **argv);

#endif
