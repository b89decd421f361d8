// graphile-worker 0.17.3 draining N no-op jobs on the same PostgreSQL as `timeline-worker
// bench` (scripts/bench-queue.sh). Usage:
//   node graphile.mjs DATABASE_URL TASKS CONCURRENCY [batched]
// Prints one JSON line in the same shape as `timeline-worker bench`. "batched" turns on the
// local queue (fetch 500, complete in batches), graphile-worker's own batched path.
import { run, makeWorkerUtils, Logger } from "graphile-worker";
import pg from "pg";

const [url, tasksArg, concArg, mode] = process.argv.slice(2);
const tasks = Number(tasksArg);
const concurrency = Number(concArg);
const batched = mode === "batched";
const schema = "graphile_bench";
const quiet = new Logger(() => () => {});

const utils = await makeWorkerUtils({ connectionString: url, schema, logger: quiet });
await utils.migrate();
await utils.withPgClient((c) => c.query(`delete from ${schema}._private_jobs`));
const client = new pg.Client({ connectionString: url });
await client.connect();
// Enqueue in chunks, outside the timing (as the bench does).
for (let i = 0; i < tasks; i += 5000) {
  const n = Math.min(5000, tasks - i);
  await client.query(
    `select ${schema}.add_jobs(array(select row('noop', json_build_object('n', g), null, null, null, null, null, null)::${schema}.job_spec from generate_series($1::int, $2::int) g))`,
    [i, i + n - 1],
  );
}
const xacts = async () =>
  Number(
    (
      await client.query(
        "select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()",
      )
    ).rows[0].n,
  );
const before = await xacts();
const started = process.hrtime.bigint();
const preset = {
  worker: {
    connectionString: url,
    schema,
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 2,
    pollInterval: 100,
    ...(batched
      ? { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
      : {}),
  },
};
const runner = await run({
  preset,
  noHandleSignals: true,
  taskList: { noop: async () => {} },
  logger: quiet,
});
let polls = 0;
for (;;) {
  await new Promise((r) => setTimeout(r, 50));
  polls += 1;
  const left = Number(
    (await client.query(`select count(*) as n from ${schema}._private_jobs`)).rows[0].n,
  );
  if (left === 0) break;
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await runner.stop();
// Backends report their counts when idle, at the latest 10 s later.
await new Promise((r) => setTimeout(r, 11000));
const after = await xacts();
await client.end();
await utils.release();
console.log(
  JSON.stringify({
    tasks,
    seconds,
    tasks_per_s: tasks / seconds,
    db_transactions_per_task: Math.max(0, after - before - polls - 1) / tasks,
    concurrency,
    batch: batched ? 500 : 1,
    peer: "graphile-worker 0.17.3",
  }),
);
