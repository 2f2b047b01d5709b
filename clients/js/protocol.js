// The FLOW wire format (docs/protocol.md §1-§9), written from the document alone: the 40-byte
// header, CRC32C, varints, the string pool in both directions, BATCH frames, and the topic rules.
// Numbers above 2^53 (timestamps, deadlines: ns since the epoch) are BigInt.
import { ProtocolError } from './errors.js';

export const MAGIC = 0x574f4c46; // "FLOW" read little-endian
export const HEADER = 40;
// §2 message types
export const TASK_ASSIGNMENT = 0x01, TASK_RESULT = 0x02, COORDINATION = 0x03, HEARTBEAT = 0x04, BATCH = 0x05;
export const REGISTER = 0x10, WELCOME = 0x11, SUBSCRIBE = 0x12, UNSUBSCRIBE = 0x13, PUBLISH = 0x14;
export const REQUEST = 0x15, REPLY = 0x16, ACK = 0x17, NACK = 0x18, ERROR = 0x19, CREDIT = 0x1a, GOODBYE = 0x1b,
  CHALLENGE = 0x1c;
// §3 flags
export const ACK_REQUESTED = 0x01, HAS_DEADLINE = 0x02, REDELIVERY = 0x04, BROADCAST = 0x08, TRACED = 0x10;
// §5 wire kinds, §5.1 fields: number -> [name, kind, repeated]
const VARINT = 0, STRING = 1, BYTES = 2, PAIR = 3;
const FIELDS = {
  1: ['topic', STRING, false], 2: ['correlation_id', VARINT, false], 3: ['reply_to', STRING, false],
  4: ['deadline', VARINT, false], 5: ['message_id', VARINT, false], 6: ['source', STRING, false],
  7: ['hop_count', VARINT, false], 8: ['header', PAIR, true], 9: ['target', STRING, false],
  10: ['queue_group', STRING, false], 11: ['error_code', VARINT, false], 12: ['credit', VARINT, false],
  13: ['agent_type', STRING, false], 14: ['capability', STRING, true], 15: ['heartbeat_ms', VARINT, false],
  16: ['attempt', VARINT, false], 17: ['subscription', STRING, true], 18: ['max_attempts', VARINT, false],
  19: ['token', STRING, false], 20: ['nonce', STRING, false], 21: ['public_key', STRING, false],
  22: ['signature', STRING, false], 23: ['trace', BYTES, false],
};
const BY_NAME = Object.fromEntries(Object.entries(FIELDS).map(([n, [name, kind, rep]]) => [name, [Number(n), kind, rep]]));
const POOL_ENTRIES = 1024, POOL_BYTES = 65536, POOLED_MAX = 255;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

// §4: CRC32C, reflected 0x82F63B78, init and final XOR 0xFFFFFFFF; slicing-by-4 tables.
const T = new Uint32Array(4 * 256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  T[i] = c >>> 0;
}
for (let i = 0; i < 256; i++)
  for (let t = 1; t < 4; t++) T[t * 256 + i] = (T[(t - 1) * 256 + i] >>> 8) ^ T[T[(t - 1) * 256 + i] & 0xff];

/** CRC32C continued over b[start, end) from a running value (start: 0xffffffff; finish: ^ 0xffffffff). */
function crcUpdate(c, b, start, end) {
  let i = start;
  const n4 = start + ((end - start) & ~3);
  for (; i < n4; i += 4) {
    c ^= b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    c = T[768 + (c & 0xff)] ^ T[512 + ((c >>> 8) & 0xff)] ^ T[256 + ((c >>> 16) & 0xff)] ^ T[c >>> 24];
  }
  for (; i < end; i++) c = T[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return c;
}

/** CRC32C of bytes (a Uint8Array). */
export function crc32c(b) {
  return (crcUpdate(0xffffffff, b, 0, b.length) ^ 0xffffffff) >>> 0;
}

/** The checksum of a frame whose checksum field (offset 32) counts as zero (§4). */
function frameCrc(b) {
  let c = crcUpdate(0xffffffff, b, 0, 32);
  c = crcUpdate(c, ZERO4, 0, 4);
  return (crcUpdate(c, b, 36, b.length) ^ 0xffffffff) >>> 0;
}
const ZERO4 = new Uint8Array(4);

/** Appends a varint (a Number or a BigInt) to `out` (an array of bytes). */
export function putVarint(out, v) {
  if (typeof v === 'bigint' || v > 0xffffffff) {
    let x = BigInt(v);
    while (x > 0x7fn) {
      out.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    out.push(Number(x));
    return;
  }
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** [value, next offset]; a Number, or a BigInt above 2^53. */
export function getVarint(b, i, end) {
  let v = 0, mul = 1;
  for (let n = 0; n < 7; n++) { // up to 49 bits as a Number
    if (i >= end) throw new ProtocolError('truncated varint', 12);
    const x = b[i++];
    v += (x & 0x7f) * mul;
    if (!(x & 0x80)) {
      if (n > 0 && x === 0) throw new ProtocolError('overlong varint', 13);
      return [v, i];
    }
    mul *= 128;
  }
  let big = BigInt(v), shift = 49n;
  for (let n = 7; n < 10; n++) {
    if (i >= end) throw new ProtocolError('truncated varint', 12);
    const x = b[i++];
    big |= BigInt(x & 0x7f) << shift;
    shift += 7n;
    if (!(x & 0x80)) {
      if (x === 0) throw new ProtocolError('overlong varint', 13);
      return [big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big, i];
    }
  }
  throw new ProtocolError('varint longer than 10 bytes', 14);
}

/** A message: its type, flags, priority, routing fields (by name; repeated ones as arrays) and payload. */
export class Message {
  constructor(type, fields = {}, payload = new Uint8Array(0), flags = 0, priority = 2) {
    this.type = type;
    this.fields = fields;
    this.payload = payload;
    this.flags = flags;
    this.priority = priority;
    this.sequence = 0;
    this.timestamp = 0n;
  }
}

/** One direction of one connection: the send sequence and the send pool (§5.2, §7). */
export class Encoder {
  constructor() {
    this.sequence = 0;
    this.pool = new Map();
    this.poolBytes = 0;
  }

  #string(out, s, poolable) {
    const key = typeof s === 'string' ? s : fromUtf8.decode(s);
    if (poolable) {
      const id = this.pool.get(key);
      if (id !== undefined) return putVarint(out, (id << 2) | 2); // reference
    }
    const b = typeof s === 'string' ? utf8.encode(s) : s;
    if (poolable) {
      if (b.length >= 2 && b.length <= POOLED_MAX && this.pool.size < POOL_ENTRIES &&
          this.poolBytes + b.length <= POOL_BYTES) {
        this.pool.set(key, this.pool.size);
        this.poolBytes += b.length;
        putVarint(out, (b.length << 2) | 1); // define
        for (const x of b) out.push(x);
        return;
      }
    }
    putVarint(out, b.length << 2); // literal
    for (const x of b) out.push(x);
  }

  /** The frame of `m` (a Uint8Array), taking the next sequence number; `inner`: for a BATCH, checksum 0. */
  encode(m, inner = false) {
    const routing = [];
    const names = Object.keys(m.fields).filter((n) => m.fields[n] !== undefined)
      .sort((a, b) => BY_NAME[a][0] - BY_NAME[b][0]);
    for (const name of names) {
      const [num, kind, rep] = BY_NAME[name];
      for (const v of rep ? m.fields[name] : [m.fields[name]]) {
        putVarint(routing, (num << 2) | kind);
        if (kind === VARINT) putVarint(routing, v);
        else if (kind === STRING) this.#string(routing, v, true);
        else if (kind === BYTES) {
          putVarint(routing, v.length);
          for (const x of v) routing.push(x);
        } else {
          this.#string(routing, v[0], true);
          this.#string(routing, v[1], false);
        }
      }
    }
    const flags = m.flags | ('deadline' in m.fields && m.fields.deadline !== undefined ? HAS_DEADLINE : 0) |
      ('trace' in m.fields && m.fields.trace !== undefined ? TRACED : 0);
    const total = HEADER + routing.length + m.payload.length;
    const frame = new Uint8Array(total);
    const d = new DataView(frame.buffer);
    d.setUint32(0, MAGIC, true);
    frame[4] = 1;
    frame[5] = m.type;
    frame[6] = flags;
    frame[7] = m.priority;
    d.setUint32(8, total, true);
    d.setUint32(12, m.payload.length, true);
    d.setBigUint64(16, nowNs(), true);
    d.setBigUint64(24, BigInt(this.sequence++), true);
    frame.set(routing, HEADER);
    frame.set(m.payload, HEADER + routing.length);
    if (!inner) d.setUint32(32, frameCrc(frame), true);
    return frame;
  }

  /** One WebSocket message for 1 to 32 messages: the frame itself, or a BATCH (§6). */
  encodeMany(messages) {
    if (messages.length === 1) return this.encode(messages[0]);
    const first = this.sequence;
    const inner = messages.map((m) => this.encode(m, true));
    const size = inner.reduce((s, f) => s + f.length, 0);
    const frame = new Uint8Array(HEADER + size);
    const d = new DataView(frame.buffer);
    d.setUint32(0, MAGIC, true);
    frame[4] = 1;
    frame[5] = BATCH;
    frame[7] = Math.min(...messages.map((m) => m.priority));
    d.setUint32(8, HEADER + size, true);
    d.setUint32(12, size, true);
    frame.set(inner[0].subarray(16, 24), 16); // the first inner message's timestamp
    d.setBigUint64(24, BigInt(first), true);
    let at = HEADER;
    for (const f of inner) {
      frame.set(f, at);
      at += f.length;
    }
    d.setUint32(32, frameCrc(frame), true);
    return frame;
  }
}

/** The other direction: the receive pool; checks what §9 says a receiver checks. */
export class Decoder {
  constructor() {
    this.pool = [];
  }

  #string(b, i, end, pending) {
    let h;
    [h, i] = getVarint(b, i, end);
    const mode = h & 3, n = Math.floor(h / 4);
    if (mode === 0 || mode === 1) {
      if (i + n > end) throw new ProtocolError('truncated string', 12);
      const s = fromUtf8.decode(b.subarray(i, i + n));
      if (mode === 1) pending.push(s);
      return [s, i + n];
    }
    if (mode === 2) {
      const s = n < this.pool.length ? this.pool[n] : pending[n - this.pool.length];
      if (s === undefined) throw new ProtocolError('unknown pool id ' + n, 17);
      return [s, i];
    }
    throw new ProtocolError('string mode 3', 16);
  }

  #body(b, at, type, flags, prio, total, psize, ts, seq) {
    const m = new Message(type, {}, b.slice(at + total - psize, at + total), flags, prio);
    m.sequence = seq;
    m.timestamp = ts;
    const end = at + total - psize, pending = [];
    let i = at + HEADER;
    while (i < end) {
      let key, v;
      [key, i] = getVarint(b, i, end);
      const num = Math.floor(key / 4), kind = key & 3;
      if (kind === VARINT) [v, i] = getVarint(b, i, end);
      else if (kind === STRING) [v, i] = this.#string(b, i, end, pending);
      else if (kind === BYTES) {
        let n;
        [n, i] = getVarint(b, i, end);
        v = b.slice(i, i + n);
        i += n;
      } else {
        let k, val;
        [k, i] = this.#string(b, i, end, pending);
        [val, i] = this.#string(b, i, end, pending);
        v = [k, val];
      }
      const f = FIELDS[num];
      if (!f) continue; // unknown fields are skipped (their pool definitions still count)
      if (f[1] !== kind) throw new ProtocolError('bad field ' + num, 15);
      if (f[2]) (m.fields[f[0]] ??= []).push(v);
      else m.fields[f[0]] = v;
    }
    this.pool.push(...pending);
    return m;
  }

  /** The messages of one WebSocket message: the frame, or a BATCH's inner frames (§6). */
  messages(data) {
    const b = data instanceof Uint8Array ? data : new Uint8Array(data);
    if (b.length < HEADER) throw new ProtocolError('frame too small', 8);
    const d = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const head = (at) => [d.getUint32(at, true), b[at + 4], b[at + 5], b[at + 6], b[at + 7], d.getUint32(at + 8, true),
      d.getUint32(at + 12, true), d.getBigUint64(at + 16, true), Number(d.getBigUint64(at + 24, true)),
      d.getUint32(at + 32, true), d.getUint32(at + 36, true)];
    const [magic, version, type, flags, prio, total, psize, ts, seq, crc, reserved] = head(0);
    if (magic !== MAGIC) throw new ProtocolError('not a FLOW frame', 2);
    if (version !== 1 || total !== b.length || psize > total - HEADER || reserved)
      throw new ProtocolError('bad header', 10);
    if (frameCrc(b) !== crc) throw new ProtocolError('checksum mismatch', 11);
    if (type !== BATCH) return [this.#body(b, 0, type, flags, prio, total, psize, ts, seq)];
    const out = [];
    for (let at = HEADER; at < b.length;) {
      const [m2, , t2, f2, p2, tot2, ps2, ts2, seq2, crc2] = head(at);
      if (m2 !== MAGIC || crc2 !== 0 || t2 === BATCH || tot2 < HEADER || at + tot2 > b.length)
        throw new ProtocolError('bad inner message', 28);
      out.push(this.#body(b, at, t2, f2, p2, tot2, ps2, ts2, seq2));
      at += tot2;
    }
    return out;
  }
}

/** ns since the Unix epoch (BigInt), the header's clock. */
export function nowNs() {
  const ms = typeof performance !== 'undefined' && performance.timeOrigin !== undefined
    ? performance.timeOrigin + performance.now() : Date.now();
  return BigInt(Math.round(ms * 1e6));
}

// Topics and patterns (§12): checked before sending, as the node checks them.
function check(s, wildcards) {
  if (!s) return 'empty';
  if (utf8.encode(s).length > 255) return 'too_long';
  const tokens = s.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!t) return 'empty_token';
    if (t.includes('*') || t.includes('>')) {
      if (!wildcards) return 'wildcard_in_topic';
      if (t.length !== 1 || (t === '>' && i !== tokens.length - 1)) return 'bad_wildcard';
    }
  }
  return null;
}
/** null if `topic` may be published to, else why not. */
export const validateTopic = (topic) => check(topic, false);
/** null if `pattern` may be subscribed to, else why not. */
export const validatePattern = (pattern) => check(pattern, true);
/** Whether a valid pattern matches a valid topic (`*` one token, `>` one or more). */
export function patternMatches(pattern, topic) {
  const p = pattern.split('.'), t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i;
    if (i >= t.length || (p[i] !== '*' && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}
