/* jobseen.c - jobs created through sluice, per identity (see jobseen.h).
 *
 * Lookups scan a ring of 16-byte keys (1 MiB at most): only requests of masked identities
 * for job results ask, and a scan costs far less than the round trip to BigQuery. The file
 * is a line of 32 hex digits per entry, appended without fsync: an entry lost in a crash
 * fails closed (the identity runs its query again). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobseen.h"

#define KEY 16

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char (*ring)[KEY];
static unsigned next, count;
static int fd = -1;

static void key_of(const char *identity, const char *project, const char *job,
		   unsigned char out[KEY])
{
	unsigned char h[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *s = EVP_MD_CTX_new();

	memset(h, 0xff, sizeof(h)); /* out of memory: a key no job has */
	if (s && EVP_DigestInit_ex(s, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(s, identity, strlen(identity)) && EVP_DigestUpdate(s, "\n", 1) &&
	    EVP_DigestUpdate(s, project, strlen(project)) && EVP_DigestUpdate(s, "\n", 1) &&
	    EVP_DigestUpdate(s, job, strlen(job)))
		EVP_DigestFinal_ex(s, h, NULL);
	EVP_MD_CTX_free(s);
	memcpy(out, h, KEY);
}

/* Under mu. */
static int put(const unsigned char k[KEY])
{
	if (!ring && !(ring = calloc(JOBSEEN_MAX, KEY)))
		return -ENOMEM;
	memcpy(ring[next], k, KEY);
	next = (next + 1) % JOBSEEN_MAX;
	if (count < JOBSEEN_MAX)
		count++;
	return 0;
}

static int unhex(const char *s, unsigned char out[KEY])
{
	int i;

	for (i = 0; i < 2 * KEY; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
			c - 'a' + 10 : -1;

		if (v < 0)
			return -1;
		if (i & 1)
			out[i / 2] |= (unsigned char)v;
		else
			out[i / 2] = (unsigned char)(v << 4);
	}
	return s[2 * KEY] == '\n' ? 0 : -1;
}

int jobseen_open(const char *path, char *err, size_t errlen)
{
	char line[2 * KEY + 2];
	unsigned char k[KEY];
	FILE *f;
	long good = 0; /* bytes up to the last whole line */
	int rc = 0;

	pthread_mutex_lock(&mu);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (!unhex(line, k))
			put(k);
		if (strchr(line, '\n'))
			good = ftell(f);
	}
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s; fix the directory (jobs created through sluice are "
			 "remembered there)", path, strerror(errno));
	} else if (ftruncate(fd, count == JOBSEEN_MAX ? 0 : good)) {
		/* a torn last line (a crash) is cut, or the next entry would be glued to it */
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	} else if (count == JOBSEEN_MAX) {
		/* full: keep the file as long as the ring, oldest first */
		unsigned i;

		for (i = 0; i < JOBSEEN_MAX; i++) {
			const unsigned char *r = ring[(next + i) % JOBSEEN_MAX];
			int j;

			for (j = 0; j < KEY; j++)
				snprintf(line + 2 * j, 3, "%02x", r[j]);
			line[2 * KEY] = '\n';
			if (write(fd, line, 2 * KEY + 1) != 2 * KEY + 1)
				break;
		}
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

void jobseen_add(const char *identity, const char *project, const char *job_id)
{
	unsigned char k[KEY];
	char line[2 * KEY + 1];
	int j;

	if (!identity || !project || !*project || !job_id || !*job_id)
		return;
	key_of(identity, project, job_id, k);
	for (j = 0; j < KEY; j++)
		snprintf(line + 2 * j, 3, "%02x", k[j]);
	line[2 * KEY] = '\n';
	pthread_mutex_lock(&mu);
	put(k);
	if (fd >= 0 && write(fd, line, sizeof(line)) != (ssize_t)sizeof(line)) {
		/* the file is behind: this entry lives in memory only (fails closed after a
		 * restart) */
	}
	pthread_mutex_unlock(&mu);
}

int jobseen_has(const char *identity, const char *project, const char *job_id)
{
	unsigned char k[KEY];
	unsigned i;
	int hit = 0;

	if (!identity || !project || !job_id)
		return 0;
	key_of(identity, project, job_id, k);
	pthread_mutex_lock(&mu);
	for (i = 0; i < count && !hit; i++)
		hit = !memcmp(ring[i], k, KEY);
	pthread_mutex_unlock(&mu);
	return hit;
}

void jobseen_close(void)
{
	pthread_mutex_lock(&mu);
	free(ring);
	ring = NULL;
	next = count = 0;
	if (fd >= 0)
		close(fd);
	fd = -1;
	pthread_mutex_unlock(&mu);
}
