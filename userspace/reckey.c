/* reckey.c - the recording store's Ed25519 signing key (OpenSSL): creating, loading and
 * identifying it, signing checkpoints and checking their signatures, and
 * `sluicectl record init`. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "log.h"
#include "reckey.h"
#include "record.h"

void rec_pub_path(const char *key_path, char *out, size_t outlen)
{
	size_t n = strlen(key_path);

	if (n > 4 && !strcmp(key_path + n - 4, ".key"))
		snprintf(out, outlen, "%.*s.pub", (int)(n - 4), key_path);
	else
		snprintf(out, outlen, "%s.pub", key_path);
}

int rec_key_id(struct evp_pkey_st *key, char out[17])
{
	unsigned char raw[32], h[32];
	size_t n = sizeof(raw);
	char hex[65];

	if (!key || EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != 32) {
		ERR_clear_error();
		return -EINVAL;
	}
	rec_sha256(raw, 32, h);
	rec_hex(h, 32, hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
	return 0;
}

/* Write PEM <key> (private when <priv>) to <path> with <mode>, created O_EXCL. */
/* Write <key> (private or public) to <path>, which must not exist, whole or not at all: it
 * is written and synced under a temporary name, then linked into place (a crash part-way
 * leaves no half-written key that a later start would take for the store's), and the
 * directory is synced. */
static int write_key(const char *path, EVP_PKEY *key, int priv, mode_t mode, char *err,
		     size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	FILE *f;
	int fd, ok, e = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		err_set(err, errlen, "cannot create %s: path too long", path);
		return -ENAMETOOLONG;
	}
	unlink(tmp); /* left by a crashed process of the same pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		e = -errno;
		err_set(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return e;
	}
	if (fchmod(fd, mode) || !(f = fdopen(fd, "w"))) {
		e = -errno;
		close(fd);
		unlink(tmp);
		err_set(err, errlen, "cannot write %s: %s", tmp, strerror(-e));
		return e;
	}
	ok = priv ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
		    PEM_write_PUBKEY(f, key);
	ERR_clear_error();
	if (!ok || fflush(f) || fsync(fd))
		e = errno ? -errno : -EIO;
	if (fclose(f) && !e)
		e = -errno;
	if (!e && link(tmp, path)) /* fails if <path> appeared meanwhile: never overwritten */
		e = -errno;
	unlink(tmp);
	if (e) {
		err_set(err, errlen, "cannot write %s: %s", path, strerror(-e));
		return e;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if ((fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

int rec_pub_repair(const char *key_path, struct evp_pkey_st *key, char *err, size_t errlen)
{
	char pub[PATH_MAX];

	rec_pub_path(key_path, pub, sizeof(pub));
	if (!access(pub, F_OK))
		return 0;
	return write_key(pub, key, 0, 0644, err, errlen);
}

int rec_key_init(const char *key_path, const char *pub_path, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	char pub[PATH_MAX];
	int e;

	if (pub_path)
		snprintf(pub, sizeof(pub), "%s", pub_path);
	else
		rec_pub_path(key_path, pub, sizeof(pub));
	if (!access(key_path, F_OK) || !access(pub, F_OK)) {
		err_set(err, errlen, "%s or %s exists; it was not overwritten", key_path, pub);
		return -EEXIST;
	}
	key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key) {
		ERR_clear_error();
		err_set(err, errlen, "cannot generate an Ed25519 key");
		return -EIO;
	}
	e = write_key(key_path, key, 1, 0600, err, errlen);
	if (!e && (e = write_key(pub, key, 0, 0644, err, errlen)))
		unlink(key_path);
	EVP_PKEY_free(key);
	return e;
}

struct evp_pkey_st *rec_load_pubkey(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *k;
	FILE *f = fopen(path, "re");

	if (!f) {
		err_set(err, errlen, "cannot open the public key %s: %s", path, strerror(errno));
		return NULL;
	}
	k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (!k) {
		rewind(f);
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	}
	fclose(f);
	ERR_clear_error();
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		err_set(err, errlen, "%s holds no Ed25519 key", path);
		return NULL;
	}
	return k;
}

struct evp_pkey_st *rec_load_private(const char *path, char *err, size_t errlen)
{
	struct stat st;
	EVP_PKEY *k;
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		err_set(err, errlen, "cannot open the recording key %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		err_set(err, errlen, "recording key %s is %s (mode %04o); it must stay private: "
				     "chmod 600 %s, and consider the key exposed if others could "
				     "read it", path, S_ISREG(st.st_mode) ? "accessible by group "
				     "or others" : "not a regular file",
			(unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		err_set(err, errlen, "%s holds no Ed25519 private key", path);
		return NULL;
	}
	return k;
}

int rec_sig_verify(struct evp_pkey_st *key, const char *msg, size_t msglen, const char *b64)
{
	unsigned char sig[80];
	EVP_MD_CTX *ctx;
	size_t n = b64 ? strlen(b64) : 0;
	int ok;

	if (n != 88 || EVP_DecodeBlock(sig, (const unsigned char *)b64, (int)n) != 66)
		return 0;
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
	     EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, msglen) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

int rec_sign_b64(EVP_PKEY *key, const char *msg, size_t msglen, char *b64)
{
	unsigned char sig[64];
	size_t n = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	     EVP_DigestSign(ctx, sig, &n, (const unsigned char *)msg, msglen) == 1 && n == 64;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)b64, sig, 64);
	return 0;
}

int rec_cmd_init(int argc, char **argv)
{
	const char *dir = "/var/lib/sluice/recordings", *key = NULL;
	char kp[PATH_MAX], pub[PATH_MAX], err[1024], id[17];
	EVP_PKEY *k;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--key") && i + 1 < argc)
			key = argv[++i];
		else {
			fprintf(stderr, "usage: sluicectl record init [--dir D] [--key FILE]\n"
					"  Create the Ed25519 key that signs recording checkpoints "
					"(default D/record.key, 0600; public key beside it).\n");
			return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
		}
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		fprintf(stderr, "sluicectl: record init: cannot create %s: %s\n", dir,
			strerror(errno));
		return 2;
	}
	if (key)
		snprintf(kp, sizeof(kp), "%s", key);
	else
		snprintf(kp, sizeof(kp), "%s/record.key", dir);
	rec_pub_path(kp, pub, sizeof(pub));
	if (rec_key_init(kp, pub, err, sizeof(err))) {
		fprintf(stderr, "sluicectl: record init: %s\n", err);
		return 2;
	}
	k = rec_load_pubkey(pub, err, sizeof(err));
	if (!k || rec_key_id(k, id)) {
		fprintf(stderr, "sluicectl: record init: %s\n", err);
		EVP_PKEY_free(k);
		return 2;
	}
	EVP_PKEY_free(k);
	printf("created the recording key %s (mode 0600) and %s\nkey id %s: publish it, "
	       "auditors check checkpoints against it\n", kp, pub, id);
	return 0;
}
