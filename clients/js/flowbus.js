// flowbus for JavaScript: a client for flowbus nodes (docs/protocol.md §12), ES modules, no build
// step. In the browser it uses the native WebSocket; in Node.js the global one where present
// (Node 22+), else the `ws` package from npm.
//
//   import { Client } from './flowbus.js';
//   const c = await new Client({ url: 'ws://127.0.0.1:8081', id: 'worker-1', type: 'worker' }).connect();
//   const sub = await c.subscribe('tasks.>', null, { queue: 'workers' });
//   for await (const task of sub) c.respond(task, 'done');
//   const reply = await c.request('svc.summarize', 'text', { timeoutMs: 2000 });
//
// One connection, reconnected with exponential backoff and full jitter (it registers again,
// subscribes again, then sends what queued meanwhile). Sends never wait for the network: what is
// queued within one turn of the event loop, or while the socket's buffer is busy, goes as BATCH
// frames of up to 32. Delivery is at most once; publishAcked and `acks: true` give at least once.
import * as p from './protocol.js';
import {
  ConnectionClosed, FlowbusError, InvalidPattern, InvalidTopic, MailboxFull, ProtocolError, RoutingError, Timeout,
  TooLarge, Unauthenticated, errorFor,
} from './errors.js';

export * from './errors.js';
export { validateTopic, validatePattern, patternMatches, crc32c } from './protocol.js';
export const Priority = Object.freeze({ CRITICAL: 0, HIGH: 1, NORMAL: 2, LOW: 3, BACKGROUND: 4 });
export const MessageType = Object.freeze({
  TASK_ASSIGNMENT: p.TASK_ASSIGNMENT, TASK_RESULT: p.TASK_RESULT, COORDINATION: p.COORDINATION,
  PUBLISH: p.PUBLISH, REQUEST: p.REQUEST, REPLY: p.REPLY,
});
const DATA = new Set(Object.values(MessageType));

/** A FIFO with O(1) shift (Array.prototype.shift moves every element: quadratic on a long queue). */
class Fifo {
  constructor() { this.items = []; this.head = 0; }
  get length() { return this.items.length - this.head; }
  push(x) { this.items.push(x); }
  peek() { return this.items[this.head]; }
  shift() {
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
}
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** A destination: one agent by its id. */
export const agent = (id) => ({ agent: id });
/** A destination: one live agent having the capability (the node picks, round robin). */
export const capability = (name) => ({ capability: name });

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** A public-key agent's key for Node.js (a PEM of `flowbus key gen`): the `key` option. In a
 * browser, give any { publicKey: 32 raw bytes, sign: async (bytes) => 64 bytes } instead. */
export async function ed25519Key(pem) {
  const crypto = await import('node:crypto');
  const priv = crypto.createPrivateKey(pem);
  const spki = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return {
    publicKey: new Uint8Array(spki.subarray(spki.length - 32)), // the raw key ends the SPKI
    sign: async (bytes) => new Uint8Array(crypto.sign(null, bytes, priv)),
  };
}

async function webSocketClass() {
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  const mod = await import('ws'); // Node.js before 22
  return mod.WebSocket ?? mod.default;
}

/** Settles through map.get(key).resolve/reject (the reader calls them), or rejects with Timeout
 * after timeoutMs; either way the entry leaves the map. */
function awaitAnswer(map, key, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      map.delete(key);
      reject(new Timeout(what));
    }, timeoutMs);
    const done = (f) => (v) => {
      clearTimeout(timer);
      map.delete(key);
      f(v);
    };
    map.set(key, { resolve: done(resolve), reject: done(reject) });
  });
}

/** The stream API's refusal: `code` is bad_request, not_found, exists, store_failed or unavailable. */
export class StreamError extends FlowbusError {
  constructor(code, description) {
    super(`${code}: ${description}`);
    this.code = code;
    this.description = description;
  }
}

const defined = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** `client.streams`: JSON requests to the agent $streams of the node the client is connected to. */
export class Streams {
  constructor(client) { this.client = client; }
  async ask(request, timeoutMs = 5000) {
    const r = await this.client.request(agent('$streams'), JSON.stringify(request), { timeoutMs });
    const answer = JSON.parse(r.text);
    if (answer.error) throw new StreamError(answer.error.code, answer.error.description ?? '');
    return answer;
  }
  /** Adds a stream (the same settings again: unchanged); its description. */
  async add(name, subjects, { storage, fsync, groupMs, segmentMb, maxBytes, maxRecords, maxAgeS } = {}) {
    const req = defined({ op: 'stream.add', name, subjects, storage, fsync, group_ms: groupMs, segment_mb: segmentMb,
      max_bytes: maxBytes, max_records: maxRecords, max_age_s: maxAgeS });
    return (await this.ask(req)).stream;
  }
  async info(name) { return (await this.ask({ op: 'stream.info', name })).stream; }
  async list() { return (await this.ask({ op: 'stream.ls' })).streams; }
  async remove(name) { await this.ask({ op: 'stream.rm', name }); }
  /** A durable consumer (with a name) or an ephemeral one (durable: false); its description.
   *  deliverTo: a topic (a queue group on it shares the records) or "agent:ID". */
  async addConsumer(stream, name, { deliverTo, durable, filter, start, startSeq, startTimeNs, ackWaitMs, maxInFlight,
    maxDeliver, backoffMs, backoffMaxMs, inactiveMs } = {}) {
    const consumer = defined({ name, durable, deliver_to: deliverTo, filter, start, start_seq: startSeq,
      start_time_ns: startTimeNs, ack_wait_ms: ackWaitMs, max_in_flight: maxInFlight, max_deliver: maxDeliver,
      backoff_ms: backoffMs, backoff_max_ms: backoffMaxMs, inactive_ms: inactiveMs });
    return (await this.ask({ op: 'consumer.add', stream, consumer })).consumer;
  }
  async consumerInfo(stream, name) { return (await this.ask({ op: 'consumer.info', stream, name })).consumer; }
  async removeConsumer(stream, name) { await this.ask({ op: 'consumer.rm', stream, name }); }
}

/** A message from the node. */
export class Received {
  constructor(m) {
    const f = m.fields;
    this.type = m.type;
    this.priority = m.priority;
    this.topic = f.topic;
    this.source = f.source;
    this.target = f.target ?? (f.capability ? f.capability[0] : undefined);
    this.replyTo = f.reply_to;
    this.correlationId = f.correlation_id ?? 0;
    this.messageId = f.message_id ?? 0;
    this.deadlineNs = f.deadline !== undefined ? BigInt(f.deadline) : 0n;
    this.timestampNs = m.timestamp;
    this.headers = Object.fromEntries(f.header ?? []);
    this.payload = m.payload;
    this.sequence = m.sequence;
  }
  get text() { return fromUtf8.decode(this.payload); }
  get isRequest() { return this.type === p.REQUEST; }
  /** Milliseconds since the sender sent it (by the two hosts' clocks). */
  get ageMs() { return Math.max(0, Number(p.nowNs() - this.timestampNs) / 1e6); }
}

/** A pattern's messages: `for await (const m of sub)`, `await sub.next(timeoutMs)`, or a handler. */
export class Subscription {
  constructor(client, pattern, queue, handler) {
    Object.assign(this, { client, pattern, queue, handler });
    this.items = [];
    this.waiters = [];
    this.active = true;
  }
  push(m) {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.items.push(m);
  }
  /** The next message; rejects with Timeout if none comes in `timeoutMs` (default: wait). */
  next(timeoutMs = undefined) {
    const take = (m) => {
      if (m) this.client._handled(m);
      return m;
    };
    if (this.items.length) return Promise.resolve(take(this.items.shift()));
    if (!this.active) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const w = (m) => {
        clearTimeout(timer);
        resolve(take(m));
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Timeout(`no message on ${this.pattern} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const m = await this.next();
      if (!m) return;
      yield m;
    }
  }
  end() {
    this.active = false;
    for (const w of this.waiters.splice(0)) w(null);
  }
  unsubscribe() { return this.client._unsubscribe(this); }
}

const defaults = {
  url: 'ws://127.0.0.1:8081', id: undefined, type: 'javascript', capabilities: [], token: undefined, key: undefined,
  priority: Priority.NORMAL, heartbeatMs: 1000, reconnect: true, backoffMs: [50, 2000], receiveWindow: 1024,
  acks: false, ackTimeoutMs: 1000, ackAttempts: 5, maxBatch: 32, maxQueued: 65536, maxMessage: 65536,
  onMessage: undefined, WebSocket: undefined, wsOptions: undefined,
};

export class Client {
  constructor(options = {}) {
    this.o = { ...defaults, ...options };
    this.id = this.o.id ?? `js-${Math.random().toString(36).slice(2, 10)}`;
    this.onMessage = this.o.onMessage;
    this.stats = { sent: 0, received: 0, writes: 0, batches: 0, connects: 0, acked: 0, redelivered: 0, duplicates: 0,
      handlerFailures: 0, holds: 0 };
    this.queue = new Fifo();   // data, in order
    this.control = new Fifo(); // ACK, CREDIT, SUBSCRIBE...: before data
    this.subs = [];
    this.inbox = new Subscription(this, '', undefined, undefined); // what no subscription takes
    this.ids = 1;
    this.answers = new Map();   // message_id -> {resolve, reject}: subscriptions, acked publishes
    this.requests = new Map();  // correlation_id -> {resolve, reject}
    this.resubscribing = new Set();
    this.seen = new Map();      // source -> {set, order}: duplicates
    this.held = false;
    this.granted = 0;
    this.ackOwed = -1;
    this.ws = null;
    this.closing = false;
    this.flushScheduled = false;
    this.drainWaiters = [];
  }

  get connected() { return this.ws !== null && this.welcomed; }

  /** Connects and registers; resolves once the node's WELCOME came, rejects with its refusal
   * (DuplicateAgent, Unauthenticated...) or Timeout (with reconnect on it goes on trying). */
  async connect({ timeoutMs = 5000 } = {}) {
    this.WS = this.o.WebSocket ?? await webSocketClass();
    const welcomed = new Promise((resolve, reject) => { this.welcome = { resolve, reject }; });
    welcomed.catch(() => {});
    this.run();
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Timeout(`no WELCOME from ${this.o.url} in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([welcomed, timeout]);
      return this;
    } catch (e) {
      if (!(e instanceof Timeout) || !this.o.reconnect) await this.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async run() {
    let delay = this.o.backoffMs[0];
    while (!this.closing) {
      let err;
      try {
        await this.session();
        delay = this.o.backoffMs[0];
      } catch (e) {
        err = e instanceof FlowbusError ? e : new ConnectionClosed(String(e?.message ?? e));
      }
      this.ws = null;
      if (this.closing) return;
      const refused = err instanceof RoutingError && !this.welcomed;
      if (refused || err instanceof Unauthenticated || !this.o.reconnect) {
        this.failAll(err ?? new ConnectionClosed('the connection ended'));
        this.welcome?.reject(err ?? new ConnectionClosed('the connection ended'));
        if (!this.o.reconnect || refused || err instanceof Unauthenticated) return;
      }
      await new Promise((r) => setTimeout(r, Math.random() * delay)); // full jitter
      delay = Math.min(this.o.backoffMs[1], delay * 2);
    }
  }

  /** One connection, from the handshake to its end (resolves or rejects when it ends). */
  session() {
    return new Promise((resolve, reject) => {
      const ws = this.o.wsOptions ? new this.WS(this.o.url, this.o.wsOptions) : new this.WS(this.o.url);
      ws.binaryType = 'arraybuffer';
      this.enc = new p.Encoder();
      this.dec = new p.Decoder();
      let registered = false, failure = null;
      const heartbeat = setInterval(() => {
        if (registered && Date.now() - this.lastWrite >= this.o.heartbeatMs * 0.9) this.enqueue(new p.Message(p.HEARTBEAT), true);
        this.scheduleFlush(); // data held back for the re-subscriptions goes once their time is up
      }, this.o.heartbeatMs);
      let challenged = false;
      const register = (extra = {}) => {
        const f = { source: this.id, agent_type: this.o.type, heartbeat_ms: this.o.heartbeatMs, ...extra };
        if (this.o.capabilities.length) f.capability = [...this.o.capabilities];
        if (this.o.token) f.token = this.o.token;
        if (this.o.receiveWindow) f.credit = this.o.receiveWindow;
        ws.send(this.enc.encode(new p.Message(p.REGISTER, f, new Uint8Array(0), this.o.acks ? p.ACK_REQUESTED : 0,
          this.o.priority)));
      };
      ws.onopen = () => { if (!this.o.key) register(); }; // with a key: after the node's CHALLENGE
      ws.onmessage = (ev) => {
        try {
          if (typeof ev.data === 'string') throw new ProtocolError('a text message from the node');
          const msgs = this.dec.messages(ev.data);
          if (this.o.key && !challenged) { // §12 "Public-key agents": sign the nonce as sent
            const c = msgs.find((m) => m.type === p.CHALLENGE);
            if (!c) throw new ProtocolError('a key was given, but the node sent no CHALLENGE (it has no --auth key)');
            challenged = true;
            Promise.resolve(this.o.key.sign(utf8.encode(c.fields.nonce))).then(
              (sig) => register({ public_key: b64url(this.o.key.publicKey), signature: b64url(sig) }),
              (e) => { failure = e; ws.close(); });
            return;
          }
          if (!registered) {
            const e = msgs.find((m) => m.type === p.ERROR);
            if (e) throw errorFor(e.fields.error_code ?? 0, Object.fromEntries(e.fields.header ?? []).reason);
            if (!msgs.some((m) => m.type === p.WELCOME)) return;
            registered = true;
            this.onWelcome(ws);
            return;
          }
          for (const m of msgs) this.dispatch(m);
        } catch (e) {
          failure = e;
          ws.close();
        }
      };
      ws.onerror = (ev) => { failure ??= new ConnectionClosed(ev?.message ?? 'WebSocket error'); };
      ws.onclose = (ev) => {
        clearInterval(heartbeat);
        this.ws = null;
        this.welcomed = false;
        if (failure) reject(failure);
        else if (this.lastError && !registered) reject(this.lastError);
        else if (this.closing) resolve();
        else reject(this.lastError ?? new ConnectionClosed(`closed (${ev?.code ?? '?'} ${ev?.reason ?? ''})`));
        this.lastError = null;
      };
    });
  }

  onWelcome(ws) {
    this.ws = ws;
    this.welcomed = true;
    this.held = false;
    this.granted = 0;
    this.ackOwed = -1;
    this.lastWrite = Date.now();
    this.stats.connects++;
    this.resubscribing.clear();
    for (const s of this.subs) { // subscribe again after a reconnect, before what queued meanwhile
      const mid = this.ids++;
      this.resubscribing.add(mid);
      this.control.push(this.subscribeFrame(s, p.SUBSCRIBE, mid));
    }
    this.resubscribedBy = Date.now() + 5000;
    this.welcome?.resolve();
    this.scheduleFlush();
  }

  // ---- writing ----------------------------------------------------------------------------

  maySend(m) {
    if (this.resubscribing.size && Date.now() < this.resubscribedBy) return false;
    return !(this.held && m.priority !== Priority.CRITICAL);
  }

  enqueue(m, control = false) {
    if (control) this.control.push(m);
    else {
      if (this.queue.length >= this.o.maxQueued) throw new MailboxFull(`${this.queue.length} messages queued (maxQueued)`);
      this.queue.push(m);
    }
    this.scheduleFlush();
  }

  scheduleFlush() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flushNow());
  }

  flushNow() {
    this.flushScheduled = false;
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return;
    if (ws.bufferedAmount > 1 << 20) { // the socket is busy: gather more meanwhile
      setTimeout(() => this.scheduleFlush(), 1);
      return;
    }
    while (this.control.length || (this.queue.length && this.maySend(this.queue.peek())) || this.ackOwed >= 0) {
      const batch = [];
      let size = p.HEADER;
      const room = this.o.maxBatch - 1; // a slot for the ACK owed
      while (this.control.length && batch.length < room) batch.push(this.control.shift());
      while (this.queue.length && batch.length < room && this.maySend(this.queue.peek())) {
        const m = this.queue.peek();
        const est = p.HEADER + 64 + m.payload.length + (m.fields.topic?.length ?? 0) + (m.fields.header?.length ?? 0) * 64;
        if (batch.length && size + est > this.o.maxMessage) break;
        size += est;
        batch.push(this.queue.shift());
      }
      if (this.ackOwed >= 0) {
        batch.push(new p.Message(p.ACK, { message_id: this.ackOwed }));
        this.ackOwed = -1;
      }
      ws.send(this.enc.encodeMany(batch));
      this.lastWrite = Date.now();
      this.stats.writes++;
      this.stats.sent += batch.length;
      if (batch.length > 1) this.stats.batches++;
      if (ws.bufferedAmount > 1 << 20) {
        setTimeout(() => this.scheduleFlush(), 1);
        return;
      }
    }
    if (!this.queue.length && !this.control.length) for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Resolves once everything queued so far is handed to the socket. */
  flush() {
    if (!this.queue.length && !this.control.length) return Promise.resolve();
    return new Promise((resolve) => { this.drainWaiters.push(resolve); this.scheduleFlush(); });
  }

  // ---- sending ----------------------------------------------------------------------------

  data(type, to, payload, { priority, headers, deadlineMs } = {}, broadcastType = undefined, broadcast = false) {
    const body = typeof payload === 'string' ? utf8.encode(payload) : new Uint8Array(payload ?? []);
    if (body.length + p.HEADER + 512 > this.o.maxMessage) throw new TooLarge(`${body.length} bytes do not fit a ${this.o.maxMessage}-byte frame`);
    const f = {};
    let flags = 0;
    if (broadcast) {
      flags |= p.BROADCAST;
      if (broadcastType) f.agent_type = broadcastType;
    } else if (to && typeof to === 'object' && to.agent) f.target = to.agent;
    else if (to && typeof to === 'object' && to.capability) f.capability = [to.capability];
    else {
      const why = p.validateTopic(to);
      if (why) throw new InvalidTopic(`${JSON.stringify(to)}: ${why}`);
      f.topic = to;
    }
    if (headers) f.header = Object.entries(headers).map(([k, v]) => [k, String(v)]);
    if (deadlineMs !== undefined) f.deadline = p.nowNs() + BigInt(Math.round(deadlineMs * 1e6));
    return new p.Message(type, f, body, flags, priority ?? this.o.priority);
  }

  /** Queues a message to `topic` (at most once). deadlineMs: from now; past it the node drops it. */
  publish(topic, payload, opts = {}) { this.enqueue(this.data(opts.type ?? p.PUBLISH, topic, payload, opts)); }

  /** To one agent (an id, or agent(id)), one capable agent (capability(name)), or a topic. */
  send(to, payload, opts = {}) {
    this.enqueue(this.data(opts.type ?? p.PUBLISH, typeof to === 'string' ? agent(to) : to, payload, opts));
  }

  /** To every agent, or every agent of `agentType`. */
  broadcast(payload, { agentType, ...opts } = {}) {
    this.enqueue(this.data(opts.type ?? p.COORDINATION, null, payload, opts, agentType, true));
  }

  /** At least once: resolves once the node queued it for every current recipient; rejects with its
   * refusal (NoResponders, NotPermitted...) or Timeout after ackAttempts x ackTimeoutMs. */
  async publishAcked(topic, payload, opts = {}) {
    const m = this.data(p.PUBLISH, topic, payload, opts);
    const mid = this.ids++;
    m.fields.message_id = mid;
    m.flags |= p.ACK_REQUESTED;
    const answer = new Promise((resolve, reject) => this.answers.set(mid, { resolve, reject }));
    answer.catch(() => {});
    try {
      for (let attempt = 0; attempt < this.o.ackAttempts; attempt++) {
        if (attempt) {
          m.flags |= p.REDELIVERY;
          this.stats.redelivered++;
        }
        this.enqueue(m);
        let timer;
        const late = new Promise((r) => { timer = setTimeout(() => r(false), this.o.ackTimeoutMs); });
        const got = await Promise.race([answer.then(() => true), late]).finally(() => clearTimeout(timer));
        if (got) {
          this.stats.acked++;
          return;
        }
      }
      throw new Timeout(`${topic}: not acknowledged after ${this.o.ackAttempts} attempts`);
    } finally {
      this.answers.delete(mid);
    }
  }

  /** The reply (a Received), or rejects with NoResponders, AgentUnavailable, NoCapableAgent, Timeout. */
  request(to, payload, { timeoutMs = 2000, ...opts } = {}) {
    const m = this.data(p.REQUEST, to, payload, opts);
    const cid = this.ids++;
    m.fields.correlation_id = cid;
    const reply = awaitAnswer(this.requests, cid, timeoutMs, `no reply from ${JSON.stringify(to)} in ${timeoutMs} ms`);
    try {
      this.enqueue(m);
    } catch (e) {
      this.requests.get(cid).reject(e);
    }
    return reply;
  }

  /** Answers a request (to its replyTo, with its correlation id and priority). */
  respond(req, payload, opts = {}) {
    if (!req.replyTo) throw new FlowbusError('not a request: nothing to reply to');
    const m = this.data(p.REPLY, agent(req.replyTo), payload, { ...opts, priority: req.priority });
    m.fields.correlation_id = req.correlationId;
    this.enqueue(m);
  }

  // ---- durable streams (docs/streams.md) -------------------------------------------------------

  /** The node's stream API (the agent $streams): add, info, list, remove; addConsumer... */
  get streams() { return new Streams(this); }
  /** Acknowledges a stream consumer's record: it is not sent again. */
  ack(msg) { this.respond(msg, ''); }
  /** Asks for a stream consumer's record again, after the consumer's backoff. */
  nak(msg) { this.respond(msg, '-NAK'); }
  /** Still working on a stream consumer's record: its ack wait starts again. */
  inProgress(msg) { this.respond(msg, '+WPI'); }
  /** Never again: the record goes to the node's poison dead-letter queue. */
  term(msg) { this.respond(msg, '+TERM'); }

  // ---- subscribing ------------------------------------------------------------------------

  subscribeFrame(s, type, mid) {
    const f = { topic: s.pattern, message_id: mid };
    if (s.queue) f.queue_group = s.queue;
    return new p.Message(type, f);
  }

  answered(m, timeoutMs) {
    const answer = awaitAnswer(this.answers, m.fields.message_id, timeoutMs, `no answer from the node in ${timeoutMs} ms`);
    this.enqueue(m, true);
    return answer;
  }

  /** Subscribes (again after every reconnect) once the node accepted; rejects with its refusal
   * (InvalidPattern, NotPermitted, TooManySubscriptions). `handler` (sync or async) is called for
   * each message; without one, iterate the Subscription. */
  async subscribe(pattern, handler = null, { queue, timeoutMs = 5000 } = {}) {
    const why = p.validatePattern(pattern);
    if (why) throw new InvalidPattern(`${JSON.stringify(pattern)}: ${why}`);
    const s = new Subscription(this, pattern, queue, handler);
    await this.answered(this.subscribeFrame(s, p.SUBSCRIBE, this.ids++), timeoutMs);
    this.subs.push(s);
    return s;
  }

  async _unsubscribe(s, timeoutMs = 5000) {
    const i = this.subs.indexOf(s);
    if (i < 0) return;
    this.subs.splice(i, 1);
    s.end();
    await this.answered(this.subscribeFrame(s, p.UNSUBSCRIBE, this.ids++), timeoutMs);
  }

  /** What no subscription takes (unicast, broadcasts) when there is no onMessage. */
  messages() { return this.inbox; }

  // ---- receiving --------------------------------------------------------------------------

  _handled(m) {
    if (this.o.acks) {
      this.ackOwed = Math.max(this.ackOwed, m.sequence);
      this.scheduleFlush();
    }
    if (this.o.receiveWindow && ++this.granted * 2 >= this.o.receiveWindow) {
      this.enqueue(new p.Message(p.CREDIT, { credit: this.granted }), true);
      this.granted = 0;
    }
  }

  repeat(source, id) {
    let e = this.seen.get(source);
    if (!e) {
      if (this.seen.size >= 1024) this.seen.delete(this.seen.keys().next().value);
      e = { set: new Set(), order: [] };
      this.seen.set(source, e);
    }
    if (e.set.has(id)) return true;
    e.set.add(id);
    e.order.push(id);
    if (e.order.length > 4096) e.set.delete(e.order.shift());
    return false;
  }

  dispatch(m) {
    const f = m.fields;
    if ((m.type === p.ACK || m.type === p.NACK) && this.resubscribing.delete(f.message_id)) this.scheduleFlush();
    if (m.type === p.ACK) this.answers.get(f.message_id)?.resolve();
    else if (m.type === p.NACK) this.answers.get(f.message_id)?.reject(errorFor(f.error_code ?? 0, Object.fromEntries(f.header ?? []).reason));
    else if (m.type === p.ERROR) {
      const err = errorFor(f.error_code ?? 0, Object.fromEntries(f.header ?? []).reason);
      const r = this.requests.get(f.correlation_id);
      if (r) r.reject(err);
      else this.lastError = err; // the close follows
    } else if (m.type === p.CREDIT) {
      this.held = (f.credit ?? 0) === 0;
      if (this.held) this.stats.holds++;
      else this.scheduleFlush();
    } else if (DATA.has(m.type)) {
      const r = new Received(m);
      if (m.type === p.REPLY) { // to a request of ours; one that timed out is dropped
        this.requests.get(r.correlationId)?.resolve(r);
        this._handled(r);
        return;
      }
      if (r.messageId && r.source && this.repeat(r.source, r.messageId)) {
        this.stats.duplicates++;
        this._handled(r);
        return;
      }
      this.stats.received++;
      this.deliver(r);
    }
  }

  deliver(r) {
    const s = r.topic === undefined ? undefined : this.subs.find((x) => p.patternMatches(x.pattern, r.topic));
    const handler = s ? s.handler : this.onMessage;
    if (!handler) {
      (s ?? this.inbox).push(r);
      return;
    }
    const failed = () => {
      this.stats.handlerFailures++;
      if (this.o.acks) {
        this.enqueue(new p.Message(p.NACK, { message_id: r.sequence, error_code: 74 }), true);
        this.granted++;
      } else this._handled(r);
    };
    try {
      const out = handler(r);
      if (out && typeof out.then === 'function') out.then(() => this._handled(r), failed);
      else this._handled(r);
    } catch {
      failed();
    }
  }

  failAll(err) {
    for (const a of [...this.answers.values(), ...this.requests.values()]) a.reject(err);
  }

  /** Writes what is queued (for at most timeoutMs), says GOODBYE, closes. Idempotent. */
  async close({ timeoutMs = 5000 } = {}) {
    if (this.closing) return;
    if (this.ws && this.queue.length) {
      let timer;
      await Promise.race([this.flush(), new Promise((r) => { timer = setTimeout(r, timeoutMs); })]);
      clearTimeout(timer);
    }
    this.closing = true;
    const ws = this.ws;
    if (ws && ws.readyState === 1) {
      ws.send(this.enc.encode(new p.Message(p.GOODBYE)));
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 1000);
        ws.addEventListener?.('close', () => { clearTimeout(timer); resolve(); });
        ws.close(1000);
      });
    }
    this.failAll(new ConnectionClosed('closed'));
    for (const s of this.subs) s.end();
    this.inbox.end();
  }
}
