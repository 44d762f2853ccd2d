/* ctlsock.h - sluiced's control socket: approvers' requests, one JSON object per line.
 *
 * A thread listens on a Unix socket (mode 0660, in a directory 0750 that it creates, or
 * that must already be owned by sluiced's user and not world-writable). Every connection is
 * authorized with SO_PEERCRED / SO_PEERGROUPS / SO_PEERPIDFD: the peer must be a configured
 * approver uid or in a configured group, and must not run in an enforced cgroup (not even
 * as root inside its container). Nobody decides a request made from their own cgroup or
 * under their own identity.
 *
 * Requests and answers (each one line):
 *   {"op":"list"}                      {"ok":true,"items":[...]}
 *   {"op":"show","id":"a7f3k2"}        {"ok":true,"item":{...}}
 *   {"op":"approve","id":...,"reason":...,"for_s":1800}   {"ok":true,"item":{...}}
 *   {"op":"deny","id":...,"reason":...}                   {"ok":true,"item":{...}}
 *   {"op":"watch"}   {"ok":true,"items":[pending...]}, then {"event":"pending"|"decided",
 *                    "item":{...}} as they happen
 * Refusals: {"ok":false,"code":"unauthorized"|"not_found"|"already_decided"|"self"|
 * "bad_request","error":"..."}. */
#ifndef SLUICE_CTLSOCK_H
#define SLUICE_CTLSOCK_H

#include <stddef.h>
#include <sys/types.h>

#include "approve.h"

#define CTLSOCK_MAX_LIST 64

/* Who may approve, and who never may. The lead fills it from the configuration. */
struct ctlsock_conf {
	const char *path;                    /* the socket ("/run/sluice/sluice.sock") */
	uid_t uids[CTLSOCK_MAX_LIST];        /* approvers.uids */
	int n_uids;
	const char *groups[CTLSOCK_MAX_LIST]; /* approvers.groups: names or numeric gids */
	int n_groups;
	const char *enforced[CTLSOCK_MAX_LIST]; /* enforced cgroup paths ("/agents.slice") */
	int n_enforced;
};

struct ctlsock;

/* Create the socket and start the server thread. Returns 0 and *out, or -errno with <err>
 * (e.g. the directory is world-writable, or another sluiced listens there). */
int ctlsock_start(const struct ctlsock_conf *conf, struct approve *a, struct ctlsock **out,
		  char *err, size_t errlen);

/* Take new approvers and enforced cgroups (on reload); the path stays. 0 or -ENOMEM. */
int ctlsock_reconfigure(struct ctlsock *s, const struct ctlsock_conf *conf);

/* Stop the thread, close every connection and remove the socket. <s> may be NULL. */
void ctlsock_stop(struct ctlsock *s);

/* The cgroup v2 path of process <pid> ("/agents.slice/x"), from /proc/<pid>/cgroup.
 * 0 or -errno. */
int ctlsock_cgroup_of(pid_t pid, char *out, size_t len);

/* Is cgroup <path> <root> itself or below it? */
int ctlsock_cgroup_within(const char *path, const char *root);

#endif
