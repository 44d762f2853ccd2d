/* Description: jobs created through sluice, per identity: an identity sees its own jobs
 * only, entries survive a restart through the file (a torn last line is skipped), the oldest
 * go when the ring is full; and the gate lets a masked identity read the results of its own
 * jobs and refuses another identity's. */
#include <fcntl.h>

#include "gate.h"
#include "jobseen.h"
#include "tap.h"

static enum policy_verdict results(struct policy *p, const char *identity, const char *job)
{
	char target[256];
	struct policy_subject sub = { .cgroup = "/agents/a1", .identity = identity };
	struct gate_request r = { .host = "bigquery.googleapis.com", .method = "GET",
				  .target = target };
	struct gate_verdict v = { 0 };
	enum policy_verdict d;

	r.target_len = (size_t)snprintf(target, sizeof(target),
		"/bigquery/v2/projects/demo-project/queries/%s?location=US", job);
	gate_decide(p, &sub, &r, 1, &v);
	d = v.d.verdict;
	gate_verdict_free(&v);
	return d;
}

int main(void)
{
	char dir[] = "/tmp/sluice-jobseen.XXXXXX", path[64], err[256], job[32];
	struct policy *pii;
	int fd, i;

	if (!mkdtemp(dir))
		return tap_done();
	snprintf(path, sizeof(path), "%s/jobs.seen", dir);
	is_int(jobseen_open(path, err, sizeof(err)), 0, "opens a new file");
	jobseen_add("agent-a", "p", "job_1");
	ok(jobseen_has("agent-a", "p", "job_1"), "the identity that created a job has it");
	ok(!jobseen_has("agent-b", "p", "job_1"), "another identity has not");
	ok(!jobseen_has("agent-a", "p", "job_2"), "nor has anyone a job never seen");
	ok(!jobseen_has("agent-a", "q", "job_1"), "nor the same job id in another project");
	jobseen_close();
	ok(!jobseen_has("agent-a", "p", "job_1"), "closed: forgotten in memory");
	fd = open(path, O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "0123abcd", 8) == 8, "a torn line is appended (a crash)");
	close(fd);
	is_int(jobseen_open(path, err, sizeof(err)), 0, "reopens");
	ok(jobseen_has("agent-a", "p", "job_1"), "after a restart the job is still agent-a's");
	ok(!jobseen_has("agent-b", "p", "job_1"), "... and still not agent-b's");
	for (i = 0; i < JOBSEEN_MAX; i++) {
		snprintf(job, sizeof(job), "bulk_%d", i);
		jobseen_add("agent-c", "p", job);
	}
	ok(!jobseen_has("agent-a", "p", "job_1"), "the oldest entry goes when the ring is full");
	ok(jobseen_has("agent-c", "p", "bulk_0") && jobseen_has("agent-c", "p", job), "the newest stay");
	jobseen_close();
	is_int(jobseen_open(path, err, sizeof(err)), 0, "reopens a full file (compacted)");
	ok(jobseen_has("agent-c", "p", "bulk_0") && !jobseen_has("agent-a", "p", "job_1"),
	   "the ring read back from the file");
	jobseen_close();
	is_int(jobseen_open("/nonexistent-dir/jobs.seen", err, sizeof(err)) < 0, 1,
	       "an unusable path is an error");
	ok(strstr(err, "/nonexistent-dir/jobs.seen"), "naming the path: %s", err);
	jobseen_close();

	pii = policy_load("policies/pii-masking.json", err, sizeof(err));
	if (!ok(pii != NULL, "pii-masking policy loads (%s)", err))
		return tap_done();
	jobseen_add("agent-a", "demo-project", "job_9");
	jobseen_add("agent-a", "other-project", "job_11");
	is_int(results(pii, "agent-a", "job_9"), POLICY_ALLOW,
	       "a masked identity reads the results of its own job");
	is_int(results(pii, "agent-a", "job_11"), POLICY_DENY,
	       "... not those of a job with the same id in another project");
	is_int(results(pii, "agent-b", "job_9"), POLICY_DENY,
	       "another masked identity is refused them (computed through another's rewrite)");
	is_int(results(pii, "agent-a", "job_10"), POLICY_DENY, "a job made outside sluice: refused");
	policy_free(pii);
	jobseen_close();
	unlink(path);
	rmdir(dir);
	return tap_done();
}
