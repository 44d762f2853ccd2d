/* sluiced.c - the sluice daemon's main: arguments, configuration, signals. The request path
 * lives in the modules; this file only wires them together. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define DEFAULT_CONFIG "/etc/sluice/sluice.json"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluiced [--config FILE] [--check]\n"
		"  --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
		"  --check        validate the configuration and exit (0 valid, 2 invalid)\n"
		"Runs in the foreground and logs to stderr. SIGTERM stops, SIGHUP reloads.\n");
}

/* Reload on SIGHUP: a configuration that does not validate is refused and the running one
 * stays in force (fail closed: never half-apply). */
static void reload(struct sluice_conf *conf)
{
	struct sluice_conf next;
	char err[512];

	if (conf_load(conf->path, &next, err, sizeof(err))) {
		log_err("conf", "reload refused, previous configuration stays in force: %s", err);
		conf_free(&next);
		return;
	}
	conf_free(conf);
	*conf = next;
	log_set_level((enum log_level)conf->log_level);
	log_info("conf", "reloaded %s", conf->path);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = DEFAULT_CONFIG;
	struct sluice_conf conf;
	struct signalfd_siginfo si;
	sigset_t mask;
	char err[512];
	int opt, check = 0, sfd, running = 1;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'k': check = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluiced: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (conf_load(config, &conf, err, sizeof(err))) {
		fprintf(stderr, "sluiced: configuration error: %s\n", err);
		conf_free(&conf);
		return 2;
	}
	log_set_level((enum log_level)conf.log_level);
	if (check) {
		printf("%s: valid\n", config);
		conf_free(&conf);
		return 0;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("main", "signalfd: %s", strerror(errno));
		conf_free(&conf);
		return 1;
	}
	log_info("main", "started with %s", config);
	while (running) {
		if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
			if (errno == EINTR)
				continue;
			log_err("main", "signalfd read: %s", strerror(errno));
			break;
		}
		if (si.ssi_signo == SIGHUP)
			reload(&conf);
		else
			running = 0;
	}
	log_info("main", "stopped");
	close(sfd);
	conf_free(&conf);
	return 0;
}
