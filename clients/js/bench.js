#!/usr/bin/env node
// The JavaScript client's throughput and latency, measured as `flowbus bench` measures the C++ one
// (docs/benchmarks.md, "Clients"): one JSON line per result.
//   node bench.js throughput URL [--messages N] [--size B]     1->1: a publisher and a subscriber
//   node bench.js latency URL [--rate R] [--seconds S] [--size B]
// Latency is offered at a fixed rate: message i is due at t0 + i/R, carries that intended time, and
// is measured from it to its arrival (no coordinated omission). The subscriber is a child process;
// both read the host's monotonic clock (process.hrtime).
import { fork } from 'node:child_process';
import { Client } from './flowbus.js';

const [scenario, url, ...rest] = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : dflt;
};
const size = Number(opt('size', 128));
const now = () => process.hrtime.bigint();

async function subscriberProcess() { // argv: sub URL TOPIC COUNT latency|throughput
  const [, u, topic, countText, mode] = process.argv.slice(2);
  const count = Number(countText);
  const sub = await new Client({ url: u, id: `js-bench-sub-${process.pid}`, type: 'bench', receiveWindow: 4096 }).connect();
  const samples = [];
  let done;
  const finished = new Promise((r) => { done = r; });
  await sub.subscribe(topic, (m) => {
    const t = now();
    samples.push(mode === 'latency' ? Number(t - new DataView(m.payload.buffer, m.payload.byteOffset).getBigUint64(0, true)) : t);
    if (samples.length === count) done();
  });
  process.send({ ready: true });
  for (let seen = -1; samples.length !== count && samples.length !== seen;) { // all came, or 5 s brought none
    seen = samples.length;
    await Promise.race([finished, new Promise((r) => setTimeout(r, 5000))]);
  }
  process.send(mode === 'latency' ? { samples } : { first: String(samples[0] ?? 0), last: String(samples.at(-1) ?? 0), got: samples.length });
  await sub.close();
  process.exit(0);
}

function startSubscriber(topic, count, mode) {
  const child = fork(new URL(import.meta.url).pathname, ['sub', url, topic, String(count), mode]);
  const next = () => new Promise((resolve) => child.once('message', resolve));
  return { child, ready: next(), result: () => next() };
}

function stamp(t, n) {
  const b = new Uint8Array(n);
  new DataView(b.buffer).setBigUint64(0, t, true);
  return b;
}

const pct = (s) => {
  s.sort((a, b) => a - b);
  const q = (x) => +(s[Math.min(s.length - 1, Math.floor(x * s.length))] / 1e3).toFixed(1);
  return { p50_us: q(0.5), p90_us: q(0.9), p95_us: q(0.95), p99_us: q(0.99), max_us: +(s.at(-1) / 1e3).toFixed(1) };
};

async function throughput() {
  const n = Number(opt('messages', 200000));
  const s = startSubscriber('bench.js.tp', n, 'throughput');
  await s.ready;
  const result = s.result();
  const pub = await new Client({ url, id: `js-bench-pub-${process.pid}`, type: 'bench' }).connect();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    if (pub.queue.length > 20000) await pub.flush(); // a publisher as fast as its writer
    pub.publish('bench.js.tp', stamp(now(), size));
  }
  await pub.flush();
  const r = await result;
  console.log(JSON.stringify({ bench: opt('name', 'js_pubsub_1to1'), client: 'javascript', payload_bytes: size, messages: n,
    received: r.got, msgs_per_s: Math.round(r.got / (Number(BigInt(r.last) - t0) / 1e9)), writes: pub.stats.writes,
    batches: pub.stats.batches }));
  await pub.close();
}

async function latency() {
  const rate = Number(opt('rate', 10000)), count = Math.round(rate * Number(opt('seconds', 5)));
  const s = startSubscriber('bench.js.lat', count, 'latency');
  await s.ready;
  const result = s.result();
  const pub = await new Client({ url, id: `js-bench-lpub-${process.pid}`, type: 'bench' }).connect();
  const period = 1e9 / rate, t0 = now() + 10000000n;
  for (let i = 0; i < count;) {
    const t = now(), due = t0 + BigInt(Math.round(i * period));
    if (t < due) {
      await new Promise((r) => setTimeout(r, Math.max(0, Number(due - t) / 1e6 - 0.5)));
      continue;
    }
    for (; i < count && t0 + BigInt(Math.round(i * period)) <= t; i++) // every message due by now, each with its own time
      pub.publish('bench.js.lat', stamp(t0 + BigInt(Math.round(i * period)), size));
    await new Promise((r) => setImmediate(r)); // let the writer run
  }
  const { samples } = await result;
  console.log(JSON.stringify({ bench: opt('name', `js_latency_${Math.round(rate / 1000)}k`), client: 'javascript',
    payload_bytes: size, offered_per_s: rate, count: samples.length, ...pct(samples) }));
  await pub.close();
}

if (scenario === 'sub') await subscriberProcess();
else if (scenario === 'throughput') await throughput();
else if (scenario === 'latency') await latency();
else {
  console.error('usage: node bench.js throughput|latency URL [--messages N] [--rate R] [--seconds S] [--size B]');
  process.exit(2);
}
