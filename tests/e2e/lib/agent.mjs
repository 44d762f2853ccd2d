// agent.mjs - a sample AI agent's BigQuery access, written as any agent would write it: the
// real @google-cloud/bigquery client with its default endpoint and a service-account key.
// Nothing here knows about sluice. Prints one JSON line per step; exits 1 on the first error.
//   node agent.mjs QUERY [QUERY...]
import { BigQuery } from '@google-cloud/bigquery';

const bq = new BigQuery({ projectId: 'demo-project' });
for (const query of process.argv.slice(2)) {
  try {
    const [rows] = await bq.query({ query, useLegacySql: false });
    console.log(JSON.stringify({ query, ok: true, rows }));
  } catch (e) {
    console.log(JSON.stringify({ query, ok: false, code: e.code, message: e.message }));
    process.exit(1);
  }
}
