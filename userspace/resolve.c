/* resolve.c - a lazily started pool of resolver threads fed from one queue. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "resolve.h"

#define RESOLVERS 2

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct resolve_job *head, **tail = &head;
static int started;

static void lookup(struct resolve_job *j)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *res;
	char port[8];

	snprintf(port, sizeof(port), "%u", j->port);
	j->err = getaddrinfo(j->host, port, &hints, &res);
	if (j->err)
		return;
	memcpy(&j->addr, res->ai_addr, res->ai_addrlen);
	j->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
}

static void *resolver(void *unused)
{
	struct resolve_job *j;

	for (;;) {
		pthread_mutex_lock(&mu);
		while (!head)
			pthread_cond_wait(&cv, &mu);
		j = head;
		head = j->next;
		if (!head)
			tail = &head;
		pthread_mutex_unlock(&mu);
		lookup(j);
		while (worker_post(j->w, j->done, j->arg)) /* out of memory: try again shortly */
			usleep(1000);
	}
	return NULL;
}

int resolve_start(struct resolve_job *job)
{
	pthread_t t;
	int i, rc = 0;

	pthread_mutex_lock(&mu);
	for (i = started; i < RESOLVERS; i++) {
		if (pthread_create(&t, NULL, resolver, NULL)) {
			rc = -EAGAIN;
			break;
		}
		pthread_detach(t);
		started++;
	}
	if (!started) {
		pthread_mutex_unlock(&mu);
		return rc;
	}
	job->next = NULL;
	*tail = job;
	tail = &job->next;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	return 0;
}
