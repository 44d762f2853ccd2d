/* record.c - connection records, one JSON line each, one file per cgroup (jansson). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record.h"

static void put_addr(json_t *o, const struct sluice_origin *org)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (org->family == AF_INET)
		inet_ntop(AF_INET, &org->addr[12], ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, org->addr, ip, sizeof(ip));
	json_object_set_new(o, "dst_addr", json_string(ip));
	json_object_set_new(o, "dst_port", json_integer(org->port));
}

int record_conn(const char *dir, const struct record_conn *rc)
{
	json_t *o = json_object();
	struct timespec ts;
	char path[512], *line;
	size_t len;
	int fd, e = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_set_new(o, "time", json_real((double)ts.tv_sec + ts.tv_nsec / 1e9));
	json_object_set_new(o, "event", json_string("connection"));
	if (rc->origin) {
		json_object_set_new(o, "cgroup_id", json_integer((json_int_t)rc->origin->cgroup_id));
		json_object_set_new(o, "pid", json_integer(rc->origin->pid));
		json_object_set_new(o, "tgid", json_integer(rc->origin->tgid));
		json_object_set_new(o, "uid", json_integer(rc->origin->uid));
		json_object_set_new(o, "comm", json_stringn(rc->origin->comm,
			strnlen(rc->origin->comm, sizeof(rc->origin->comm))));
		json_object_set_new(o, "netns_cookie",
				    json_integer((json_int_t)rc->origin->netns_cookie));
		put_addr(o, rc->origin);
	}
	json_object_set_new(o, "sni", json_string(rc->sni));
	json_object_set_new(o, "route", json_string(rc->route));
	json_object_set_new(o, "reason", json_string(rc->reason));
	json_object_set_new(o, "requests", json_integer((json_int_t)rc->requests));
	json_object_set_new(o, "bytes_from_agent", json_integer((json_int_t)rc->bytes_in));
	json_object_set_new(o, "bytes_to_agent", json_integer((json_int_t)rc->bytes_out));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)rc->duration_ms));
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!line)
		return -ENOMEM;
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%llu.conn.jsonl", dir,
		 rc->origin ? (unsigned long long)rc->origin->cgroup_id : 0ULL);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	len = strlen(line);
	line[len++] = '\n'; /* json_dumps leaves room: it was NUL-terminated */
	if (fd < 0 || write(fd, line, len) != (ssize_t)len)
		e = -errno;
	if (fd >= 0)
		close(fd);
	free(line);
	return e;
}
