/* jobseen.h - jobs created through sluice, and by whom. An identity with masked columns may
 * read the results of its own jobs only: those were computed through its masking rewrite,
 * while another identity's job (or one made outside sluice) may hold clear values. Entries
 * are SHA-256(identity "\n" project "\n" job id) cut to 16 bytes (a job id is unique in its
 * project only): the most recent JOBSEEN_MAX in memory,
 * appended to a file (0600) that a restarted sluiced reads back. Thread-safe. */
#ifndef SLUICE_JOBSEEN_H
#define SLUICE_JOBSEEN_H

#include <stddef.h>

#define JOBSEEN_MAX 65536

/* Read <path> back (if it exists) and append new entries to it from now on. Returns 0 or
 * -errno with a message in <err>. Without it, entries are kept in memory only. */
int jobseen_open(const char *path, char *err, size_t errlen);

/* <identity> (the verified subject, else the cgroup) created job <job_id> of <project>
 * through sluice. */
void jobseen_add(const char *identity, const char *project, const char *job_id);

/* Did <identity> create job <job_id> of <project> through sluice? */
int jobseen_has(const char *identity, const char *project, const char *job_id);

/* Forget everything and close the file (tests, shutdown). */
void jobseen_close(void);

#endif
