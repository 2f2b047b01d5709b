"""The FLOW wire format (docs/protocol.md §1-§9): frames, CRC32C, varints, the string pool in
both directions, and BATCH frames. Written from the document alone; the client (client.py) and
the interoperability tests use it."""
import struct
import time

from .errors import ProtocolError


MAGIC = b"FLOW"
HEADER = 40
# §2 message types
TASK_ASSIGNMENT, TASK_RESULT, COORDINATION, HEARTBEAT, BATCH = 0x01, 0x02, 0x03, 0x04, 0x05
REGISTER, WELCOME, SUBSCRIBE, UNSUBSCRIBE, PUBLISH = 0x10, 0x11, 0x12, 0x13, 0x14
REQUEST, REPLY, ACK, NACK, ERROR, CREDIT, GOODBYE, CHALLENGE = 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C
# §3 flags
ACK_REQUESTED, HAS_DEADLINE, REDELIVERY, BROADCAST, TRACED = 0x01, 0x02, 0x04, 0x08, 0x10
# §5.1 fields: number -> (name, wire kind, repeated)
VARINT, STRING, BYTES, PAIR = 0, 1, 2, 3
FIELDS = {
    1: ("topic", STRING, False), 2: ("correlation_id", VARINT, False), 3: ("reply_to", STRING, False),
    4: ("deadline", VARINT, False), 5: ("message_id", VARINT, False), 6: ("source", STRING, False),
    7: ("hop_count", VARINT, False), 8: ("header", PAIR, True), 9: ("target", STRING, False),
    10: ("queue_group", STRING, False), 11: ("error_code", VARINT, False), 12: ("credit", VARINT, False),
    13: ("agent_type", STRING, False), 14: ("capability", STRING, True), 15: ("heartbeat_ms", VARINT, False),
    16: ("attempt", VARINT, False), 17: ("subscription", STRING, True), 18: ("max_attempts", VARINT, False),
    19: ("token", STRING, False), 20: ("nonce", STRING, False), 21: ("public_key", STRING, False),
    22: ("signature", STRING, False), 23: ("trace", BYTES, False),
}
# §14 trace hops
CLIENT_SEND, NODE_IN, CLUSTER_IN, NODE_OUT = 1, 2, 3, 4


def trace_hops(trace):
    """§14: the (kind, ns) hops of a trace field's bytes."""
    return [(trace[i], struct.unpack_from("<Q", trace, i + 1)[0]) for i in range(0, len(trace), 9)]


def trace_hop(kind, ns):
    return bytes([kind]) + struct.pack("<Q", ns)


BY_NAME = {name: (num, kind, rep) for num, (name, kind, rep) in FIELDS.items()}
POOL_ENTRIES, POOL_BYTES, POOLED_MAX = 1024, 65536, 255


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def _crc32c_python(data):
    """§4: reflected 0x82F63B78, init and final XOR 0xFFFFFFFF."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


try:  # Debian's python3-crc32c (SSE4.2): ~100x faster than the table, same numbers
    from crc32c import crc32c as _crc32c_c

    def crc32c(data):
        return _crc32c_c(bytes(data))
except ImportError:  # pragma: no cover - the pure-Python table
    crc32c = _crc32c_python


assert crc32c(b"123456789") == 0xE3069283


def put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def get_varint(buf, i):
    v, shift = 0, 0
    for n in range(10):
        if i >= len(buf):
            raise ProtocolError("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if n > 0 and b == 0:
                raise ProtocolError("overlong varint")
            return v, i
    raise ProtocolError("varint longer than 10 bytes")


class Message:
    def __init__(self, type_, fields=None, payload=b"", flags=0, priority=2):
        self.type = type_
        self.flags = flags
        self.priority = priority
        self.fields = dict(fields or {})  # singular: name -> value; repeated: name -> list
        self.payload = payload
        self.sequence = 0
        self.timestamp = 0

    def get(self, name, default=None):
        return self.fields.get(name, default)

    def __repr__(self):
        return "Message(0x%02x, %r, %r)" % (self.type, self.fields, self.payload[:32])


class Encoder:
    """One direction of one connection: the send sequence and the send pool (§5.2, §7)."""

    def __init__(self, pool=True):
        self.sequence = 0
        self.pool = {}
        self.pool_bytes = 0
        self.use_pool = pool

    def _string(self, s, poolable):
        b = s.encode() if isinstance(s, str) else bytes(s)
        if self.use_pool and poolable:
            if b in self.pool:
                return put_varint(self.pool[b] << 2 | 2)  # reference
            if (2 <= len(b) <= POOLED_MAX and len(self.pool) < POOL_ENTRIES
                    and self.pool_bytes + len(b) <= POOL_BYTES):
                self.pool[b] = len(self.pool)
                self.pool_bytes += len(b)
                return put_varint(len(b) << 2 | 1) + b  # define
        return put_varint(len(b) << 2 | 0) + b  # literal

    def encode(self, m, inner=False):
        """The frame of `m`, taking the next sequence number. `inner`: for a BATCH, checksum 0 (§6)."""
        routing = bytearray()
        names = sorted(m.fields, key=lambda n: BY_NAME[n][0])
        for name in names:
            num, kind, rep = BY_NAME[name]
            values = m.fields[name] if rep else [m.fields[name]]
            for v in values:
                routing += put_varint(num << 2 | kind)
                if kind == VARINT:
                    routing += put_varint(v)
                elif kind == STRING:
                    routing += self._string(v, True)
                elif kind == BYTES:
                    routing += put_varint(len(v)) + bytes(v)
                elif kind == PAIR:
                    routing += self._string(v[0], True) + self._string(v[1], False)
        flags = m.flags | (HAS_DEADLINE if "deadline" in m.fields else 0) | (TRACED if "trace" in m.fields else 0)
        total = HEADER + len(routing) + len(m.payload)
        header = bytearray(MAGIC + struct.pack("<BBBBIIQQII", 1, m.type, flags, m.priority, total,
                                               len(m.payload), time.time_ns(), self.sequence, 0, 0))
        frame = header + routing + m.payload
        if not inner:
            struct.pack_into("<I", frame, 32, crc32c(frame))
        self.sequence += 1
        return bytes(frame)

    def encode_many(self, messages):
        """One WebSocket message for 1 to 32 messages: the frame itself, or a BATCH (§6)."""
        if len(messages) == 1:
            return self.encode(messages[0])
        first = self.sequence
        inner = [self.encode(m, inner=True) for m in messages]
        return encode_batch(inner, first, min(m.priority for m in messages))


class Decoder:
    """The other direction: the receive pool; checks what §9 says a receiver checks."""

    def __init__(self):
        self.pool = []

    def _string(self, buf, i, pending):
        h, i = get_varint(buf, i)
        mode, n = h & 3, h >> 2
        if mode in (0, 1):
            if i + n > len(buf):
                raise ProtocolError("truncated string")
            s = bytes(buf[i:i + n])
            if mode == 1:
                pending.append(s)
            return s.decode(), i + n
        if mode == 2:
            pool = self.pool + pending
            if n >= len(pool):
                raise ProtocolError("unknown pool id %d" % n)
            return pool[n].decode(), i
        raise ProtocolError("string mode 3")

    def decode(self, frame):
        if len(frame) < HEADER or frame[:4] != MAGIC:
            raise ProtocolError("not a FLOW frame")
        version, type_, flags, prio, total, psize, ts, seq, crc, reserved = struct.unpack_from("<BBBBIIQQII", frame, 4)
        if version != 1 or total != len(frame) or psize > total - HEADER or reserved:
            raise ProtocolError("bad header")
        zeroed = bytearray(frame)
        struct.pack_into("<I", zeroed, 32, 0)
        if crc32c(zeroed) != crc:
            raise ProtocolError("checksum mismatch")
        return self._body(frame, type_, flags, prio, total, psize, ts, seq)

    def _body(self, frame, type_, flags, prio, total, psize, ts, seq):
        m = Message(type_, flags=flags, priority=prio)
        m.sequence, m.timestamp = seq, ts
        routing = frame[HEADER:total - psize]
        m.payload = bytes(frame[total - psize:total])
        pending, i = [], 0
        while i < len(routing):
            key, i = get_varint(routing, i)
            num, kind = key >> 2, key & 3
            if kind == VARINT:
                v, i = get_varint(routing, i)
            elif kind == STRING:
                v, i = self._string(routing, i, pending)
            elif kind == BYTES:
                n, i = get_varint(routing, i)
                v, i = bytes(routing[i:i + n]), i + n
            else:
                k, i = self._string(routing, i, pending)
                val, i = self._string(routing, i, pending)
                v = (k, val)
            if num not in FIELDS:
                continue  # unknown fields are skipped (their pool definitions still count)
            name, want, rep = FIELDS[num]
            if kind != want:
                raise ProtocolError("bad field %d" % num)
            if rep:
                m.fields.setdefault(name, []).append(v)
            else:
                m.fields[name] = v
        self.pool.extend(pending)
        return m

    def messages(self, frame):
        """The messages in one WebSocket message: the frame, or a BATCH's inner frames (§6)."""
        m = self.decode(frame)
        if m.type != BATCH:
            return [m]
        out, p = [], m.payload
        i = 0
        while i < len(p):
            version, type_, flags, prio, total, psize, ts, seq, crc, reserved = struct.unpack_from("<BBBBIIQQII", p, i + 4)
            if p[i:i + 4] != MAGIC or crc != 0 or type_ == BATCH:
                raise ProtocolError("bad inner message")
            out.append(self._body(p[i:i + total], type_, flags, prio, total, psize, ts, seq))
            i += total
        return out


def encode_batch(inner, first_sequence, priority):
    """A BATCH frame around inner frames (checksums 0, consecutive sequence numbers from
    `first_sequence`): the first's timestamp, the most urgent priority, flags 0 (§6)."""
    payload = b"".join(inner)
    timestamp = struct.unpack_from("<Q", inner[0], 16)[0]
    total = HEADER + len(payload)
    frame = bytearray(MAGIC + struct.pack("<BBBBIIQQII", 1, BATCH, 0, priority, total, len(payload), timestamp,
                                          first_sequence, 0, 0)) + payload
    struct.pack_into("<I", frame, 32, crc32c(frame))
    return bytes(frame)


# Topics and patterns (§12 "Topics and patterns"), checked before sending as the node checks them.
MAX_TOPIC = 255


def _check(s, wildcards):
    b = s.encode() if isinstance(s, str) else s
    if not b:
        return "empty"
    if len(b) > MAX_TOPIC:
        return "too_long"
    tokens = b.split(b".")
    for i, t in enumerate(tokens):
        if not t:
            return "empty_token"
        if b"*" in t or b">" in t:
            if not wildcards:
                return "wildcard_in_topic"
            if len(t) != 1 or (t == b">" and i != len(tokens) - 1):
                return "bad_wildcard"
    return None


def validate_topic(topic):
    """None if `topic` may be published to, else why not."""
    return _check(topic, False)


def validate_pattern(pattern):
    """None if `pattern` may be subscribed to, else why not."""
    return _check(pattern, True)


def pattern_matches(pattern, topic):
    """Whether a valid pattern matches a valid topic (`*` one token, `>` one or more)."""
    p, t = pattern.split("."), topic.split(".")
    for i, pt in enumerate(p):
        if pt == ">":
            return len(t) > i
        if i >= len(t) or (pt != "*" and pt != t[i]):
            return False
    return len(p) == len(t)
