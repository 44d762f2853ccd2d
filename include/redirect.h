/* redirect.h - the eBPF side of sluiced: load bpf/redirect.bpf.c, attach it to the enforced
 * cgroups as pinned bpf_links (enforcement outlives sluiced: while it is down, agents'
 * connections are refused), adopt those links after a restart, keep the maps in step with the
 * configuration, and recover the origin of each accepted connection. */
#ifndef SLUICE_REDIRECT_H
#define SLUICE_REDIRECT_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"
#include "sluice-bpf.h"

struct redirect;

/* Called for each event from the connect hooks (e.g. a netns without a listener). */
typedef void (*redirect_event_fn)(void *arg, const struct sluice_event *ev);

/* Load the programs (re-using maps pinned under conf->bpf_pin_dir), then apply <conf>. Refuses
 * a configuration whose enforced cgroups contain sluiced's own. Returns NULL with <err> set. */
struct redirect *redirect_open(const struct sluice_conf *conf, redirect_event_fn fn, void *arg,
			       char *err, size_t errlen);

/* Make enforcement match <conf>: attach to new cgroups (adopting pinned links, updated to the
 * running programs), detach from cgroups no longer listed, rewrite settings and CIDR lists.
 * Returns 0, or -1 with <err> set (what was already applied stays applied). */
int redirect_apply(struct redirect *r, const struct sluice_conf *conf, char *err, size_t errlen);

/* Remove every pinned link and map under <pin_dir>: enforcement ends. Returns 0 or -1. */
int redirect_detach_all(const char *pin_dir, char *err, size_t errlen);

/* Tell the connect hooks that connections from network namespace <netns> go to <port>. */
int redirect_set_listener(struct redirect *r, uint64_t netns, uint16_t port);

/* Forget every listener (a previous sluiced's are gone with it): connects from a namespace
 * then raise a no-listener event again until a listener is set. Returns 0 or -errno. */
int redirect_clear_listeners(struct redirect *r);

/* Origin of a connection sluiced accepted: <peer> is the address accept() returned, <netns>
 * the listener's SO_NETNS_COOKIE. The entry is removed. Returns 0 or -ENOENT (the connection
 * was not redirected by sluice: someone connected to the listener directly). */
int redirect_origin(struct redirect *r, uint64_t netns, const struct sockaddr *peer,
		    struct sluice_origin *out);

/* File descriptor that becomes readable when events wait; then call redirect_poll_events. */
int redirect_events_fd(struct redirect *r);
void redirect_poll_events(struct redirect *r);

/* Unload sluiced's handles. Pinned links and maps stay: enforcement continues. */
void redirect_close(struct redirect *r);

/* Is cgroup path <self> equal to or below one of <cgroups>? (paths under the cgroup2 mount) */
int redirect_cgroup_within(const char *self, const struct conf_strlist *cgroups);

/* The cgroup2 mount point from /proc/mounts, into <out>. Returns 0 or -ENOENT. */
int redirect_cgroup2_mount(char *out, size_t outlen);

#endif
