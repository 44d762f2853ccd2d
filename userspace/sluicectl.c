/* sluicectl.c - the command line for operators, approvers and auditors. Each command lives
 * in the module it concerns; this file dispatches. Exit status: 0 success, 1 the thing
 * checked is false, 2 usage or I/O error. */
#include <stdio.h>
#include <string.h>

#include "approve.h"
#include "ctl.h"
#include "reckey.h"
#include "record.h"
#include "recverify.h"
#include "tls.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: sluicectl COMMAND [ARGS]\n"
		     "commands:\n"
		     "  ca init [--cert F] [--key F] [--permit SUFFIX]...\n"
		     "                 make the local CA that agents' TLS is re-terminated with\n"
		     "  ca export [--cert F]\n"
		     "                 print the CA certificate, for containers' trust stores\n"
		     "  explain --sql TEXT [--project P] [--default-dataset D] [--policy FILE]\n"
		     "          [--group G]... [--cgroup PATH] [--json]\n"
		     "                 what sluice makes of a query, and what the policy decides\n"
		     "  approvals [--watch] [--json] [--socket PATH]\n"
		     "                 requests waiting for an approver\n"
		     "  show ID [--json] [--socket PATH]\n"
		     "                 one approval in full: the request, its SQL, why it waits\n"
		     "  approve ID [--reason R] [--for DURATION] [--socket PATH]\n"
		     "                 let it run; --for 30m also passes identical requests until then\n"
		     "  deny ID --reason R [--socket PATH]\n"
		     "                 refuse it, telling the agent why\n"
		     "  record init [--dir D] [--key F]\n"
		     "                 make the key that signs session recordings\n"
		     "  sessions [--dir D] [--container C] [--since T] [--until T] [--json]\n"
		     "                 recorded streams: first/last time, requests, denials\n"
		     "  replay ID [--dir D] [--speed N | --step] [--json]\n"
		     "                 a recorded session as a timeline\n"
		     "  export --container C -o DIR [--dir D] [--since T] [--until T] [--key F]\n"
		     "                 a self-contained bundle of a container's recordings\n"
		     "  verify FILE|DIR [--pubkey F] [--json]\n"
		     "                 check recordings offline: 0 intact, 1 tampered with\n"
		     "  help           this text\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "explain"))
		return ctl_cmd_explain(argc - 1, argv + 1);
	if (!strcmp(argv[1], "approvals"))
		return approve_cmd_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return approve_cmd_show(argc - 1, argv + 1);
	if (!strcmp(argv[1], "approve"))
		return approve_cmd_approve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "deny"))
		return approve_cmd_deny(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ca") && argc >= 3 && !strcmp(argv[2], "init"))
		return tls_cmd_ca_init(argc - 2, argv + 2);
	if (!strcmp(argv[1], "ca") && argc >= 3 && !strcmp(argv[2], "export"))
		return tls_cmd_ca_export(argc - 2, argv + 2);
	if (!strcmp(argv[1], "record") && argc >= 3 && !strcmp(argv[2], "init"))
		return rec_cmd_init(argc - 2, argv + 2);
	if (!strcmp(argv[1], "sessions"))
		return rec_cmd_sessions(argc - 1, argv + 1);
	if (!strcmp(argv[1], "replay"))
		return rec_cmd_replay(argc - 1, argv + 1);
	if (!strcmp(argv[1], "export"))
		return rec_cmd_export(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return rec_cmd_verify(argc - 1, argv + 1);
	fprintf(stderr, "sluicectl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
