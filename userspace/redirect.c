/* redirect.c - load, attach, pin and adopt the redirect eBPF programs; maintain their maps.
 *
 * Pins under <pin_dir>: maps/<name> (shared by every generation of the programs, so a
 * restarted sluiced reads the origins the running links write) and links/<cgroup id>-<prog>.
 * A pinned link holds its program attached after sluiced exits; that is the fail-closed
 * guarantee: with no listener behind the redirect, an agent's connect() is refused. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"
#include "redirect.h"
#include "redirect.skel.h"

#define N_PROGS 5

struct attached {
	uint64_t cgid;
	struct bpf_link *links[N_PROGS];
};

struct redirect {
	struct redirect_bpf *skel;
	struct ring_buffer *rb;
	redirect_event_fn fn;
	void *arg;
	char pin_dir[256];
	struct attached att[CONF_MAX_LIST];
	int n_att;
};

static struct bpf_program *prog_at(struct redirect_bpf *s, int i, const char **name)
{
	static const char *const names[N_PROGS] = { "connect4", "connect6", "sendmsg4",
						     "sendmsg6", "sockops" };
	struct bpf_program *progs[N_PROGS] = { s->progs.sluice_connect4, s->progs.sluice_connect6,
		s->progs.sluice_sendmsg4, s->progs.sluice_sendmsg6, s->progs.sluice_sockops };

	*name = names[i];
	return progs[i];
}

int redirect_cgroup2_mount(char *out, size_t outlen)
{
	char dev[256], dir[512], type[64];
	FILE *f = fopen("/proc/mounts", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fscanf(f, "%255s %511s %63s %*[^\n]", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			snprintf(out, outlen, "%s", dir);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

int redirect_cgroup_within(const char *self, const struct conf_strlist *cgroups)
{
	size_t n;
	int i;

	for (i = 0; i < cgroups->n; i++) {
		n = strlen(cgroups->v[i]);
		while (n > 1 && cgroups->v[i][n - 1] == '/')
			n--;
		if (n == 1 || (!strncmp(self, cgroups->v[i], n) && (self[n] == '\0' || self[n] == '/')))
			return 1;
	}
	return 0;
}

/* sluiced's own cgroup v2 path, from /proc/self/cgroup ("0::/path"). */
static int own_cgroup(char *out, size_t outlen)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, outlen, "%s", line + 3);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

static int mkdirs(const char *path, mode_t mode)
{
	char tmp[512], *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* The pin directory must be on bpffs; mount one at /sys/fs/bpf when none is there. */
static int ensure_bpffs(const char *pin_dir, char *err, size_t errlen)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type != BPF_FS_MAGIC &&
	    mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
		snprintf(err, errlen, "cannot mount bpffs on /sys/fs/bpf: %s", strerror(errno));
		return -1;
	}
	if (mkdirs(pin_dir, 0700) || statfs(pin_dir, &st) || st.f_type != BPF_FS_MAGIC) {
		snprintf(err, errlen, "%s: not usable on bpffs (%s); set enforce.bpf_pin_dir to a "
			 "directory under a bpf filesystem", pin_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int link_path(char *out, size_t outlen, const char *pin_dir, uint64_t cgid, const char *prog)
{
	int n = snprintf(out, outlen, "%s/links/%llu-%s", pin_dir, (unsigned long long)cgid, prog);

	return n > 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

/* Attach every program to one cgroup, or adopt the pinned links and point them at the
 * programs just loaded (an upgrade takes effect without a window of no enforcement). */
static int attach_cgroup(struct redirect *r, const char *cg2, const char *path, char *err,
			 size_t errlen)
{
	struct attached *a = &r->att[r->n_att];
	char full[1024], pin[600];
	struct stat st;
	const char *name;
	int fd, i, rc;

	snprintf(full, sizeof(full), "%s%s", cg2, path);
	fd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "enforce.cgroups: %s: %s; create the cgroup first (it is a "
			 "path under %s)", path, strerror(errno), cg2);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memset(a, 0, sizeof(*a));
	a->cgid = st.st_ino; /* on cgroup2 the directory's inode number is the cgroup id */
	for (i = 0; i < N_PROGS; i++) {
		struct bpf_program *p = prog_at(r->skel, i, &name);

		link_path(pin, sizeof(pin), r->pin_dir, a->cgid, name);
		a->links[i] = access(pin, F_OK) == 0 ? bpf_link__open(pin) : NULL;
		if (a->links[i]) {
			rc = bpf_link__update_program(a->links[i], p);
			if (rc) {
				snprintf(err, errlen, "%s: adopting pinned link %s: %s", path, pin,
					 strerror(-rc));
				goto fail;
			}
			continue;
		}
		a->links[i] = bpf_program__attach_cgroup(p, fd);
		if (!a->links[i]) {
			snprintf(err, errlen, "%s: attaching %s: %s", path, name, strerror(errno));
			goto fail;
		}
		rc = bpf_link__pin(a->links[i], pin);
		if (rc) {
			snprintf(err, errlen, "%s: pinning %s: %s", path, pin, strerror(-rc));
			goto fail;
		}
	}
	close(fd);
	r->n_att++;
	return 0;
fail:
	close(fd);
	for (i = 0; i < N_PROGS; i++) {
		bpf_link__destroy(a->links[i]);
		a->links[i] = NULL;
	}
	return -1;
}

/* Unpin and drop links under <pin_dir>/links whose cgroup id is not in <keep>. */
static void detach_others(const char *pin_dir, const uint64_t *keep, int n_keep)
{
	char dir[512], pin[800];
	struct dirent *de;
	unsigned long long id;
	DIR *d;
	int i;

	snprintf(dir, sizeof(dir), "%s/links", pin_dir);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "%llu-", &id) != 1)
			continue;
		for (i = 0; i < n_keep && keep[i] != id; i++)
			;
		if (i < n_keep)
			continue;
		snprintf(pin, sizeof(pin), "%s/%s", dir, de->d_name);
		if (unlink(pin) == 0) /* the last reference: the kernel detaches the link */
			log_info("redirect", "detached %s", de->d_name);
	}
	closedir(d);
}

static int cidr_fill(int fd, const struct conf_cidr *c, int n)
{
	struct sluice_cidr_key k, next;
	struct sluice_cidr_val v;
	int i;

	while (bpf_map_get_next_key(fd, NULL, &next) == 0)
		if (bpf_map_delete_elem(fd, &next))
			return -errno;
	for (i = 0; i < n; i++) {
		memset(&k, 0, sizeof(k));
		k.prefixlen = c[i].prefixlen;
		memcpy(k.addr, c[i].addr, 16);
		v.port_lo = c[i].port_lo;
		v.port_hi = c[i].port_hi;
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
			return -errno;
	}
	return 0;
}

int redirect_apply(struct redirect *r, const struct sluice_conf *conf, char *err, size_t errlen)
{
	struct sluice_settings s = { .pass_loopback = (__u32)conf->pass_loopback };
	uint64_t keep[CONF_MAX_LIST];
	char cg2[256], self[4096];
	int sfd = bpf_map__fd(r->skel->maps.settings), i, j, rc;
	__u32 zero = 0;

	if (redirect_cgroup2_mount(cg2, sizeof(cg2))) {
		snprintf(err, errlen, "no cgroup2 filesystem in /proc/mounts: sluice enforces on "
			 "cgroup v2; mount one (mount -t cgroup2 none /sys/fs/cgroup)");
		return -1;
	}
	if (own_cgroup(self, sizeof(self)) == 0 && redirect_cgroup_within(self, &conf->cgroups)) {
		snprintf(err, errlen, "enforce.cgroups includes sluiced's own cgroup %s: sluiced "
			 "would redirect its own connections; run it outside the enforced cgroups",
			 self);
		return -1;
	}
	/* Narrowing off while the list is rebuilt: in between, everything is redirected. */
	if (bpf_map_update_elem(sfd, &zero, &s, BPF_ANY) ||
	    (rc = cidr_fill(bpf_map__fd(r->skel->maps.pass_cidrs), conf->pass_cidrs,
			    conf->n_pass_cidrs)) ||
	    (rc = cidr_fill(bpf_map__fd(r->skel->maps.only_cidrs), conf->only_cidrs,
			    conf->n_only_cidrs))) {
		snprintf(err, errlen, "updating redirect maps: %s", strerror(errno));
		return -1;
	}
	s.narrow = conf->n_only_cidrs > 0;
	if (bpf_map_update_elem(sfd, &zero, &s, BPF_ANY)) {
		snprintf(err, errlen, "updating redirect settings: %s", strerror(errno));
		return -1;
	}

	for (i = 0; i < r->n_att; i++)
		for (j = 0; j < N_PROGS; j++) {
			bpf_link__destroy(r->att[i].links[j]); /* pins keep them attached */
			r->att[i].links[j] = NULL;
		}
	r->n_att = 0;
	for (i = 0; i < conf->cgroups.n; i++) {
		if (attach_cgroup(r, cg2, conf->cgroups.v[i], err, errlen))
			return -1;
		keep[i] = r->att[i].cgid;
		log_info("redirect", "enforcing %s (cgroup id %llu)", conf->cgroups.v[i],
			 (unsigned long long)keep[i]);
	}
	detach_others(r->pin_dir, keep, conf->cgroups.n);
	return 0;
}

/* libbpf's own messages go through sluiced's log: warnings stay visible, the rest is debug. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	if (level == LIBBPF_WARN)
		log_warn("libbpf", "%s", line);
	else
		log_debug("libbpf", "%s", line);
	return 0;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct redirect *r = ctx;

	if (len >= sizeof(struct sluice_event) && r->fn)
		r->fn(r->arg, data);
	return 0;
}

struct redirect *redirect_open(const struct sluice_conf *conf, redirect_event_fn fn, void *arg,
			       char *err, size_t errlen)
{
	struct redirect *r = calloc(1, sizeof(*r));
	struct bpf_map *m;
	char path[512];
	int rc;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->fn = fn;
	r->arg = arg;
	libbpf_set_print(libbpf_log);
	snprintf(r->pin_dir, sizeof(r->pin_dir), "%s", conf->bpf_pin_dir);
	if (ensure_bpffs(r->pin_dir, err, errlen))
		goto fail;
	snprintf(path, sizeof(path), "%s/maps", r->pin_dir);
	if (mkdirs(path, 0700) || (snprintf(path, sizeof(path), "%s/links", r->pin_dir),
				   mkdirs(path, 0700))) {
		snprintf(err, errlen, "%s: cannot create pin directories: %s", r->pin_dir,
			 strerror(errno));
		goto fail;
	}
	r->skel = redirect_bpf__open();
	if (!r->skel) {
		snprintf(err, errlen, "opening the redirect eBPF object: %s", strerror(errno));
		goto fail;
	}
	bpf_object__for_each_map(m, r->skel->obj) {
		if (bpf_map__type(m) == BPF_MAP_TYPE_ARRAY && strstr(bpf_map__name(m), "."))
			continue; /* .rodata/.bss: per program generation, never pinned */
		snprintf(path, sizeof(path), "%s/maps/%s", r->pin_dir, bpf_map__name(m));
		bpf_map__set_pin_path(m, path);
	}
	rc = redirect_bpf__load(r->skel);
	if (rc) {
		snprintf(err, errlen, "loading the redirect eBPF programs: %s (if maps pinned by "
			 "another sluice version are in the way, run sluiced --detach first)",
			 strerror(-rc));
		goto fail;
	}
	r->rb = ring_buffer__new(bpf_map__fd(r->skel->maps.events), on_event, r, NULL);
	if (!r->rb) {
		snprintf(err, errlen, "opening the event ring buffer: %s", strerror(errno));
		goto fail;
	}
	if (redirect_apply(r, conf, err, errlen))
		goto fail;
	return r;
fail:
	redirect_close(r);
	return NULL;
}

int redirect_detach_all(const char *pin_dir, char *err, size_t errlen)
{
	char path[512];
	const char *sub[] = { "links", "maps" };
	struct dirent *de;
	DIR *d;
	int i, bad = 0;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, sub[i]);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && unlinkat(dirfd(d), de->d_name, 0))
				bad = errno;
		closedir(d);
		rmdir(path);
	}
	rmdir(pin_dir);
	if (bad) {
		snprintf(err, errlen, "%s: could not remove every pin: %s", pin_dir, strerror(bad));
		return -1;
	}
	return 0;
}

int redirect_set_listener(struct redirect *r, uint64_t netns, uint16_t port)
{
	struct sluice_listener l = { .port = port };

	return bpf_map_update_elem(bpf_map__fd(r->skel->maps.listeners), &netns, &l, BPF_ANY)
		       ? -errno : 0;
}

int redirect_clear_listeners(struct redirect *r)
{
	int fd = bpf_map__fd(r->skel->maps.listeners);
	__u64 k;

	while (bpf_map_get_next_key(fd, NULL, &k) == 0)
		if (bpf_map_delete_elem(fd, &k))
			return -errno;
	return 0;
}

int redirect_origin(struct redirect *r, uint64_t netns, const struct sockaddr *peer,
		    struct sluice_origin *out)
{
	struct sluice_conn_key k = { .netns_cookie = netns };

	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)peer;

		k.addr[10] = k.addr[11] = 0xff;
		memcpy(&k.addr[12], &a->sin_addr, 4);
		k.port = ntohs(a->sin_port);
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;

		memcpy(k.addr, &a->sin6_addr, 16);
		k.port = ntohs(a->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	return bpf_map_lookup_and_delete_elem(bpf_map__fd(r->skel->maps.origins), &k, out)
		       ? -ENOENT : 0;
}

int redirect_events_fd(struct redirect *r)
{
	return ring_buffer__epoll_fd(r->rb);
}

void redirect_poll_events(struct redirect *r)
{
	ring_buffer__consume(r->rb);
}

void redirect_close(struct redirect *r)
{
	int i, j;

	if (!r)
		return;
	for (i = 0; i < r->n_att; i++)
		for (j = 0; j < N_PROGS; j++)
			bpf_link__destroy(r->att[i].links[j]);
	ring_buffer__free(r->rb);
	redirect_bpf__destroy(r->skel);
	free(r);
}
