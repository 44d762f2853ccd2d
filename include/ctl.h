/* ctl.h - sluicectl commands that are not a module's own (policy authors' tools). Each takes
 * the arguments after its name and returns the exit status: 0 success, 1 the thing checked
 * is false, 2 usage or I/O error. */
#ifndef SLUICE_CTL_H
#define SLUICE_CTL_H

/* sluicectl explain --sql TEXT [--project P] [--default-dataset D] [--policy FILE]
 * [--group G]... [--cgroup PATH] [--json]: what sluice makes of a query, offline. */
int ctl_cmd_explain(int argc, char **argv);

#endif
