// A gotaskq external worker in Node.js with only the built-in fetch: claim (long-poll), run a
// handler, complete or fail. Usage:
//   GOTASKQ_URL=http://127.0.0.1:8000 QUEUE=node [WORKER_TOKEN=...] [MAX_JOBS=n] node examples/worker_node.mjs
const url = process.env.GOTASKQ_URL ?? "http://127.0.0.1:8000";
const queue = process.env.QUEUE ?? "node";
let left = Number(process.env.MAX_JOBS ?? -1);
const headers = { "content-type": "application/json" };
if (process.env.WORKER_TOKEN) headers.authorization = `Bearer ${process.env.WORKER_TOKEN}`;

async function post(path, body) {
  const r = await fetch(url + path, { method: "POST", headers, body: JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) throw Object.assign(new Error(data.error?.message ?? r.statusText), { code: data.error?.code });
  return data;
}

// The work: here, add up payload.numbers (fails on anything else, to show the retry path).
async function handle(job) {
  const numbers = job.payload?.numbers;
  if (!Array.isArray(numbers)) throw new TypeError("payload.numbers must be an array");
  return { sum: numbers.reduce((a, b) => a + b, 0) };
}

while (left !== 0) {
  let jobs;
  try {
    ({ jobs } = await post(`/queue/${queue}/claim`, { max: 1, wait: 20, worker: `node-${process.pid}` }));
  } catch (err) {
    console.error("claim failed:", err.message);
    await new Promise((r) => setTimeout(r, 1000));
    continue;
  }
  for (const job of jobs) {
    try {
      const result = await handle(job);
      await post(`/jobs/${job.id}/complete`, { lease_token: job.lease_token, result });
    } catch (err) {
      if (err.code === "lease_lost") continue; // the lease ran out: the job is someone else's now
      await post(`/jobs/${job.id}/fail`, {
        lease_token: job.lease_token,
        error: `${err.name}: ${err.message}`,
        traceback: err.stack ?? null,
      }).catch((e) => console.error("fail failed:", e.message));
    }
    if (left > 0) left -= 1;
  }
}
