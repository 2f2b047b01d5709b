// The JavaScript client against real `flowbus node` processes, under Node's test runner:
//   FLOWBUS_EXE=build/relwithdebinfo/apps/flowbus/flowbus node --test clients/js/test/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import * as flowbus from '../flowbus.js';
import { Client, Priority, agent, capability, ed25519Key } from '../flowbus.js';
import * as p from '../protocol.js';

const EXE = process.env.FLOWBUS_EXE ?? 'flowbus';

function startNode(port = 0, ...extra) {
  return new Promise((resolve, reject) => {
    const proc = spawn(EXE, ['node', '--port', String(port), ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on ws:\/\/[^ ]+:(\d+)/);
      if (m) resolve({ proc, port: Number(m[1]), url: `ws://127.0.0.1:${m[1]}` });
    });
    proc.on('exit', (code) => reject(new Error(`the node exited (${code}): ${out}`)));
  });
}
const stopNode = (n) => new Promise((resolve) => { n.proc.removeAllListeners('exit'); n.proc.on('exit', resolve); n.proc.kill('SIGTERM'); });
const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(pred, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(20);
  }
  return pred();
}

let node;
const clients = [];
async function client(id, opts = {}) {
  const c = await new Client({ url: node.url, id, ...opts }).connect();
  clients.push(c);
  return c;
}
before(async () => { node = await startNode(); });
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stopNode(node);
});

test('protocol: CRC32C check value, a BATCH round trip, topic rules', () => {
  assert.equal(p.crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  const enc = new p.Encoder(), dec = new p.Decoder();
  const msgs = [0, 1, 2].map((i) => new p.Message(p.PUBLISH, { topic: 'a.b', message_id: i, deadline: 1893456000000000000n },
    new TextEncoder().encode(`x${i}`)));
  const out = dec.messages(enc.encodeMany(msgs));
  assert.deepEqual(out.map((m) => new TextDecoder().decode(m.payload)), ['x0', 'x1', 'x2']);
  assert.deepEqual(out.map((m) => m.sequence), [0, 1, 2]);
  assert.equal(out[2].fields.deadline, 1893456000000000000n);
  assert.equal(enc.sequence, 3);
  assert.equal(p.validateTopic('a..b'), 'empty_token');
  assert.equal(p.validatePattern('a.>.b'), 'bad_wildcard');
  assert.ok(p.patternMatches('a.>', 'a.b.c'));
  assert.ok(!p.patternMatches('a.>', 'a'));
  assert.ok(flowbus.errorFor(100) instanceof flowbus.Timeout);
  assert.ok(flowbus.errorFor(78) instanceof flowbus.Unauthenticated);
});

test('publish and subscribe with wildcards, headers and priorities', async () => {
  const sub = await client('js-sub'), pub = await client('js-pub');
  const star = await sub.subscribe('js.ws.*.created');
  const got = [];
  await sub.subscribe('js.tail.>', (m) => got.push(m));
  pub.publish('js.ws.eu.created', 'one', { headers: { k: 'v' }, priority: Priority.HIGH });
  pub.publish('js.ws.eu.paid', 'not for us');
  pub.publish('js.tail.a.b', new Uint8Array([0, 255, 7]));
  const m = await star.next(5000);
  assert.deepEqual([m.topic, m.text, m.source, m.headers, m.priority], ['js.ws.eu.created', 'one', 'js-pub', { k: 'v' }, Priority.HIGH]);
  assert.ok(m.ageMs >= 0);
  assert.ok(await eventually(() => got.length === 1));
  assert.deepEqual([...got[0].payload], [0, 255, 7]);
  await assert.rejects(star.next(300), flowbus.Timeout);
});

test('a queue group shares each message once', async () => {
  const a = await client('js-qa'), b = await client('js-qb'), pub = await client('js-qp');
  const seen = { a: 0, b: 0 };
  await a.subscribe('js.jobs', () => { seen.a++; }, { queue: 'workers' });
  await b.subscribe('js.jobs', () => { seen.b++; }, { queue: 'workers' });
  for (let i = 0; i < 100; i++) pub.publish('js.jobs', String(i));
  assert.ok(await eventually(() => seen.a + seen.b === 100));
  await sleep(200);
  assert.equal(seen.a + seen.b, 100);
  assert.ok(seen.a > 0 && seen.b > 0);
});

test('request/reply to a topic, an agent and a capability; typed refusals', async () => {
  const svc = await client('js-svc', { capabilities: ['upper'] }), req = await client('js-req');
  await svc.subscribe('js.svc.upper', (m) => svc.respond(m, m.text.toUpperCase()));
  svc.onMessage = (m) => svc.respond(m, `direct:${m.text}`);
  const r = await req.request('js.svc.upper', 'hello', { timeoutMs: 5000 });
  assert.deepEqual([r.text, r.source], ['HELLO', 'js-svc']);
  assert.equal((await req.request(agent('js-svc'), 'x', { timeoutMs: 5000 })).text, 'direct:x');
  assert.equal((await req.request(capability('upper'), 'y', { timeoutMs: 5000 })).text, 'direct:y');
  await assert.rejects(req.request('js.svc.nobody', 'x'), (e) => e instanceof flowbus.NoResponders && e.code === 99);
  await assert.rejects(req.request(agent('js-nobody'), 'x'), flowbus.AgentUnavailable);
  await assert.rejects(req.request(capability('juggle'), 'x'), flowbus.NoCapableAgent);
  await svc.subscribe('js.svc.silent', () => {});
  const t0 = Date.now();
  await assert.rejects(req.request('js.svc.silent', 'x', { timeoutMs: 300 }), flowbus.Timeout);
  assert.ok(Date.now() - t0 >= 290);
});

test('unicast and broadcast reach the inbox', async () => {
  const a = await client('js-ua', { type: 'alpha' }), b = await client('js-ub', { type: 'beta' });
  a.send('js-ub', 'hi b');
  let m = await b.messages().next(5000);
  assert.deepEqual([m.text, m.source, m.target], ['hi b', 'js-ua', 'js-ub']);
  a.broadcast('to betas', { agentType: 'beta' });
  m = await b.messages().next(5000);
  assert.deepEqual([m.text, m.type], ['to betas', flowbus.MessageType.COORDINATION]);
});

test('local refusals are typed', async () => {
  const c = await client('js-bad');
  assert.throws(() => c.publish('a..b', 'x'), flowbus.InvalidTopic);
  assert.throws(() => c.publish('a.*', 'x'), flowbus.InvalidTopic);
  await assert.rejects(c.subscribe('a.>.b'), flowbus.InvalidPattern);
  assert.throws(() => c.publish('a.b', new Uint8Array(70000)), flowbus.TooLarge);
  await assert.rejects(new Client({ url: node.url, id: 'js-bad', reconnect: false }).connect(), flowbus.DuplicateAgent);
  const port = await freePort();
  await assert.rejects(new Client({ url: `ws://127.0.0.1:${port}`, id: 'js-nowhere', reconnect: false }).connect(),
    flowbus.ConnectionClosed);
});

test('acknowledged publishing', async () => {
  const sub = await client('js-as'), pub = await client('js-ap');
  const s = await sub.subscribe('js.acked');
  await Promise.all(Array.from({ length: 200 }, (_, i) => pub.publishAcked('js.acked', String(i))));
  assert.equal(pub.stats.acked, 200);
  const got = [];
  for (let i = 0; i < 200; i++) got.push(Number((await s.next(5000)).text));
  assert.deepEqual(got.sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => i));
  await assert.rejects(pub.publishAcked('js.acked.nobody', 'x'), flowbus.NoResponders);
});

test('an acking subscriber gets a failed message again', async () => {
  const pub = await client('js-kp'), sub = await client('js-ks', { acks: true });
  const tries = [];
  await sub.subscribe('js.retry', (m) => {
    tries.push(m.text);
    if (tries.length === 1) throw new Error('fail the first delivery');
  });
  pub.publish('js.retry', 'again');
  assert.ok(await eventually(() => tries.length >= 2));
  assert.deepEqual(tries.slice(0, 2), ['again', 'again']);
  assert.equal(sub.stats.handlerFailures, 1);
});

test('streams: the API, a consumer\'s deliveries, ack and NAK', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowbus-js-streams-'));
  const node = await startNode(0, '--stream-dir', dir);
  const c = new Client({ url: node.url, id: 'js-streams' });
  await c.connect();
  try {
    const info = await c.streams.add('orders', ['js.orders.>'], { fsync: 'always' });
    assert.equal(info.records, 0);
    await assert.rejects(c.streams.add('orders', ['other.>']), (e) => e instanceof flowbus.StreamError && e.code === 'exists');
    for (let i = 0; i < 3; i++) await c.publishAcked('js.orders.eu', `order-${i}`);
    const sub = await c.subscribe('js.work.orders');
    await c.streams.addConsumer('orders', 'proc', { deliverTo: 'js.work.orders', backoffMs: 0 });
    const first = await sub.next(5000);
    assert.equal(first.text, 'order-0');
    assert.equal(first.headers['stream-seq'], '1');
    assert.equal(first.headers['stream-topic'], 'js.orders.eu');
    assert.equal(first.replyTo, '$stream.orders');
    c.nak(first);
    const rest = [await sub.next(5000), await sub.next(5000), await sub.next(5000)];
    const again = rest.find((m) => m.text === 'order-0');
    assert.equal(again.headers['stream-deliveries'], '2');
    for (const m of rest) c.ack(m);
    let ci;
    for (let i = 0; i < 100; i++) {
      ci = await c.streams.consumerInfo('orders', 'proc');
      if (ci.pending === 0) break;
      await sleep(20);
    }
    assert.deepEqual([ci.ack_floor, ci.acked, ci.naked], [3, 3, 1]);
    await c.streams.remove('orders');
    assert.deepEqual(await c.streams.list(), []);
  } finally {
    await c.close();
    await stopNode(node);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a dead-letter queue read as a stream: $dlq.<kind> listed, consumed with its reason, not removable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowbus-js-dlq-'));
  const node = await startNode(0, '--dlq-dir', dir);
  const c = new Client({ url: node.url, id: 'js-dlq' });
  await c.connect();
  try {
    assert.ok((await c.streams.list()).some((s) => s.name === '$dlq.agent_unavailable' && s.dlq === 'agent_unavailable'));
    await assert.rejects(c.streams.remove('$dlq.agent_unavailable'), (e) => e instanceof flowbus.StreamError && e.code === 'bad_request');
    const sub = await c.subscribe('js.dlq.watch');
    await c.streams.addConsumer('$dlq.agent_unavailable', 'js-ops', { deliverTo: 'js.dlq.watch' });
    c.send('js-nobody', 'lost task'); // an agent nobody runs: a dead letter
    const m = await sub.next(10000);
    assert.equal(m.text, 'lost task');
    assert.equal(m.headers.stream, '$dlq.agent_unavailable');
    assert.equal(m.headers['dlq-reason'], 'agent_unavailable');
    assert.equal(m.headers['dlq-recipient'], 'js-nobody');
    c.ack(m);
    let ci;
    for (let i = 0; i < 100; i++) {
      ci = await c.streams.consumerInfo('$dlq.agent_unavailable', 'js-ops');
      if (ci.acked === 1) break;
      await sleep(20);
    }
    assert.deepEqual([ci.acked, ci.pending], [1, 0]);
  } finally {
    await c.close();
    await stopNode(node);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a receive window granted back, and bursts written as BATCH frames', async () => {
  const sub = await client('js-ws', { receiveWindow: 64 }), pub = await client('js-wp');
  const s = await sub.subscribe('js.window');
  const n = 3000; // below the node's queue for one connection (4096): none shed while we do not read
  for (let i = 0; i < n; i++) pub.publish('js.window', String(i));
  await pub.flush();
  assert.ok(pub.stats.batches > 0);
  assert.ok(pub.stats.writes < n);
  const got = [];
  for (let i = 0; i < n; i++) got.push(Number((await s.next(10000)).text));
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i));
});

test('a deadline already past is not delivered', async () => {
  const sub = await client('js-ds'), pub = await client('js-dp');
  const s = await sub.subscribe('js.deadline');
  pub.publish('js.deadline', 'late', { deadlineMs: -1000 });
  pub.publish('js.deadline', 'in time', { deadlineMs: 30000 });
  const m = await s.next(5000);
  assert.equal(m.text, 'in time');
  assert.ok(m.deadlineNs > p.nowNs());
});

test('reconnects, subscribes again and sends what queued meanwhile', async () => {
  const port = await freePort();
  let n2 = await startNode(port);
  const c = await new Client({ url: n2.url, id: 'js-re', backoffMs: [50, 200] }).connect();
  const got = [];
  await c.subscribe('js.re.>', (m) => got.push(m.text));
  await stopNode(n2);
  assert.ok(await eventually(() => !c.connected, 10000));
  c.publish('js.re.queued', 'sent after the reconnect');
  n2 = await startNode(port);
  try {
    assert.ok(await eventually(() => c.connected, 15000));
    assert.ok(await eventually(() => got.length === 1, 10000));
    assert.equal(got[0], 'sent after the reconnect');
    assert.equal(c.stats.connects, 2);
  } finally {
    await c.close();
    await stopNode(n2);
  }
});

test('a public-key agent signs the CHALLENGE; another key, another id, no key are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowbus-js-keys-'));
  const good = join(dir, 'good.pem'), other = join(dir, 'other.pem');
  const pub = execFileSync(EXE, ['key', 'gen', '--out', good], { encoding: 'utf8' }).trim();
  execFileSync(EXE, ['key', 'gen', '--out', other]);
  writeFileSync(join(dir, 'agents.json'), JSON.stringify({ agents: [{ public_key: pub, id: 'js-key-*' }] }));
  const n3 = await startNode(0, '--auth', 'key', '--auth-agent-keys', join(dir, 'agents.json'));
  try {
    const key = await ed25519Key(readFileSync(good, 'utf8'));
    const c = await new Client({ url: n3.url, id: 'js-key-1', key, reconnect: false }).connect();
    const s = await c.subscribe('js.key.>');
    c.publish('js.key.x', 'signed in');
    assert.equal((await s.next(5000)).text, 'signed in');
    await c.close();
    await assert.rejects(new Client({ url: n3.url, id: 'js-key-2', reconnect: false,
      key: await ed25519Key(readFileSync(other, 'utf8')) }).connect(), (e) => e instanceof flowbus.Unauthenticated && e.code === 77);
    await assert.rejects(new Client({ url: n3.url, id: 'js-admin', key, reconnect: false }).connect(),
      (e) => e instanceof flowbus.Unauthenticated && e.code === 79);
    await assert.rejects(new Client({ url: n3.url, id: 'js-key-3', reconnect: false }).connect(),
      (e) => e instanceof flowbus.Unauthenticated && e.code === 76);
  } finally {
    await stopNode(n3);
    rmSync(dir, { recursive: true, force: true });
  }
});
