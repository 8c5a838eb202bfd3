// BullMQ side of `bench_core.py --peers`: runs under node, with bullmq + ioredis installed by
// bench_core.py into its own npm folder (NODE_PATH=<peer-cache>/bullmq/node_modules).
//
// Enqueue: N x `Queue.add` from C concurrent async callers; bulk: `Queue.addBulk` in chunks of
// 1000 (one MULTI per chunk), after a FLUSHALL, on the queue the worker then drains.
// Process: one `Worker(concurrency=C)` with a no-op async processor in this process, BullMQ's
// defaults otherwise (completed jobs are kept, as gotaskq keeps DONE jobs for COMPLETE_JOB_TTL).
// Counted by BullMQ's own bookkeeping: the worker's "completed" events must reach N with no
// "failed", then getJobCounts must show N completed and nothing waiting, active, delayed or failed.
// CPU over the drain: utime+stime of this process (/proc/self/stat) and of redis-server
// (/proc/<--redis-pid>/stat), in µs per processed job. Prints one JSON line on stdout.
"use strict";

const fs = require("fs");
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");

const SYSTEM = "bullmq";
const PAYLOAD_BYTES = 50; // keep equal to peer_common.PAYLOAD_BYTES
const BULK = 1000;

function log(msg) {
  process.stderr.write(`[bench:${SYSTEM}] ${msg}\n`);
}

function parseArgs(argv) {
  const out = { timeout: 600, redisPid: null, clkTck: 100 };
  const names = {
    "--redis-url": "redisUrl",
    "--n": "n",
    "--concurrency": "concurrency",
    "--timeout": "timeout",
    "--redis-pid": "redisPid",
    "--clk-tck": "clkTck",
  };
  for (let k = 0; k < argv.length; k += 2) {
    const key = names[argv[k]];
    if (key === undefined || k + 1 >= argv.length) throw new Error(`bad argument ${argv[k]}`);
    out[key] = key === "redisUrl" ? argv[k + 1] : Number(argv[k + 1]);
  }
  if (!out.redisUrl || !(out.n > 0) || !(out.concurrency > 0)) {
    throw new Error("usage: --redis-url URL --n N --concurrency C [--timeout S] [--redis-pid PID] [--clk-tck HZ]");
  }
  return out;
}

function payload(i) {
  const base = JSON.stringify({ i, pad: "" }).length;
  return { i, pad: "x".repeat(Math.max(0, PAYLOAD_BYTES - base)) };
}

function rate(n, seconds) {
  return Math.round((n / Math.max(seconds, 1e-9)) * 10) / 10;
}

function cpuSeconds(pid, clkTck) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop().trim().split(/\s+/);
  return (Number(fields[11]) + Number(fields[12])) / clkTck; // utime + stime
}

function usPerJob(seconds, n) {
  return Math.round((seconds * 1e6) / Math.max(n, 1) * 10) / 10;
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function connectionFrom(url) {
  const u = new URL(url);
  const db = Number((u.pathname || "/0").slice(1) || 0);
  return { host: u.hostname, port: Number(u.port || 6379), db, maxRetriesPerRequest: null };
}

async function waitUntil(pred, timeout, what) {
  const deadline = now() + timeout;
  while (!(await pred())) {
    if (now() > deadline) throw new Error(`${what} not reached within ${timeout}s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  // Every loop here is bounded by args.timeout; this bounds the whole run (enqueue phases too).
  setTimeout(() => {
    log("gave up: the run took more than 3 x --timeout");
    process.exit(3);
  }, 3 * args.timeout * 1000).unref();
  const { n, concurrency: c } = args;
  const connection = connectionFrom(args.redisUrl);
  const admin = new IORedis(connection);
  const payloads = Array.from({ length: n }, (_, i) => payload(i));

  log(`enqueue ${n} one by one from ${c} async callers`);
  const q1 = new Queue("bench-one", { connection });
  await q1.waitUntilReady();
  let t0 = now();
  await Promise.all(
    Array.from({ length: c }, async (_, k) => {
      for (let i = k; i < n; i += c) await q1.add("noop", payloads[i]);
    }),
  );
  const enqueueRate = rate(n, now() - t0);
  const waiting1 = await q1.getWaitingCount();
  if (waiting1 !== n) throw new Error(`expected ${n} waiting jobs, found ${waiting1}`);
  await q1.close();
  await admin.flushall();

  log(`bulk enqueue ${n} in chunks of ${BULK}`);
  const q = new Queue("bench", { connection });
  await q.waitUntilReady();
  t0 = now();
  for (let start = 0; start < n; start += BULK) {
    await q.addBulk(payloads.slice(start, start + BULK).map((data) => ({ name: "noop", data })));
  }
  const bulkRate = rate(n, now() - t0);
  const waiting = await q.getWaitingCount();
  if (waiting !== n) throw new Error(`expected ${n} waiting jobs after bulk enqueue, found ${waiting}`);

  log(`process ${n} with Worker(concurrency=${c})`);
  let completed = 0;
  let failed = 0;
  const worker = new Worker("bench", async () => null, { connection, concurrency: c, autorun: false });
  worker.on("completed", () => {
    completed += 1;
  });
  worker.on("failed", () => {
    failed += 1;
  });
  worker.on("error", (err) => log(`worker error: ${err}`));
  const cpu0 = { self: cpuSeconds(process.pid, args.clkTck), redis: args.redisPid ? cpuSeconds(args.redisPid, args.clkTck) : 0 };
  t0 = now();
  const running = worker.run();
  let counts;
  let dt;
  let cpu1;
  try {
    await waitUntil(() => completed + failed >= n, args.timeout, `${n} completions`);
    await waitUntil(
      async () => {
        counts = await q.getJobCounts("wait", "active", "delayed", "prioritized", "failed", "completed");
        return counts.completed + counts.failed >= n && counts.wait + counts.active + counts.delayed + counts.prioritized === 0;
      },
      args.timeout,
      "an empty queue",
    );
  } finally {
    dt = now() - t0;
    cpu1 = { self: cpuSeconds(process.pid, args.clkTck), redis: args.redisPid ? cpuSeconds(args.redisPid, args.clkTck) : 0 };
    await worker.close();
    await running;
  }
  if (completed !== n || failed || counts.completed !== n || counts.failed) {
    throw new Error(`bullmq completed=${completed} failed=${failed} counts=${JSON.stringify(counts)}`);
  }
  await q.close();
  await admin.quit();
  const line = {
    system: SYSTEM,
    n,
    concurrency: c,
    enqueue_per_s: enqueueRate,
    bulk_enqueue_per_s: bulkRate,
    processed_per_s: rate(n, dt),
    worker_cpu_us_per_job: usPerJob(cpu1.self - cpu0.self, n),
    redis_cpu_us_per_job: args.redisPid ? usPerJob(cpu1.redis - cpu0.redis, n) : null,
    cpu_measured_over: "drain; worker = this node process (/proc/self/stat)",
    version: require("bullmq/package.json").version,
    ioredis: require("ioredis/package.json").version,
    node_version: process.versions.node,
    counted_by: "Worker 'completed' events + getJobCounts",
  };
  process.stdout.write(JSON.stringify(line) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`error: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
