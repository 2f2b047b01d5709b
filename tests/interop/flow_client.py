"""A FLOW protocol client written from docs/protocol.md alone (no flowbus code): frames, CRC32C,
varints, the string pool in both directions, BATCH unwrapping, and the node's WebSocket handshake.
It exists to prove the protocol is implementable outside C++; tests/interop/interop_test.py runs it
against a real `flowbus node`."""
import base64
import struct
import time

import websockets

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


class ProtocolError(Exception):
    pass


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data):
    """§4: reflected 0x82F63B78, init and final XOR 0xFFFFFFFF."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


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

    def encode(self, m):
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
        struct.pack_into("<I", frame, 32, crc32c(frame))
        self.sequence += 1
        return bytes(frame)


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


class Agent:
    """An agent connected to a node over WebSocket (protocol.md §12)."""

    def __init__(self, uri, agent_id, agent_type="python", subscriptions=(), capabilities=(), heartbeat_ms=10000,
                 window=0, token=None, origin=None, ssl=None, key=None):
        self.uri, self.id = uri, agent_id
        self.ssl = ssl  # wss://: an ssl.SSLContext that trusts the node's CA (§12, "TLS")
        self.key = key  # a public-key agent: an object with public_key() and sign(bytes) -> bytes (raw Ed25519)
        self.token = token  # credentials for a node with --auth token (§12, "Authentication")
        self.origin = origin  # an Origin header, as a browser page sends (§12: refused unless allowed)
        self.window = window  # receive window in data messages (0: none); grant more with CREDIT
        self.type, self.subscriptions, self.capabilities = agent_type, list(subscriptions), list(capabilities)
        self.heartbeat_ms = heartbeat_ms
        self.enc, self.dec = Encoder(), Decoder()
        self.ws = None
        self.inbox = []

    async def connect(self):
        tls = {"ssl": self.ssl} if self.uri.startswith("wss:") else {}
        self.ws = await websockets.connect(self.uri, max_size=1 << 20, compression=None, origin=self.origin, **tls)
        fields = {"source": self.id, "agent_type": self.type, "heartbeat_ms": self.heartbeat_ms}
        if self.token:
            fields["token"] = self.token
        if self.subscriptions:
            fields["subscription"] = self.subscriptions
        if self.capabilities:
            fields["capability"] = self.capabilities
        if self.window:
            fields["credit"] = self.window
        if self.key:  # §12 "Public-key agents": sign the CHALLENGE's nonce, as sent
            challenge = await self.next()
            if challenge.type != CHALLENGE:
                raise ProtocolError("expected CHALLENGE, got %r" % challenge, challenge)
            b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
            fields["public_key"] = b64(self.key.public_key())
            fields["signature"] = b64(self.key.sign(challenge.get("nonce").encode()))
        await self.send(Message(REGISTER, fields))
        welcome = await self.next()
        if welcome.type != WELCOME:
            raise ProtocolError("expected WELCOME, got %r" % welcome, welcome)
        return welcome

    async def send(self, m):
        await self.ws.send(self.enc.encode(m))

    async def send_raw(self, data):
        await self.ws.send(data)

    async def next(self, timeout=5.0):
        import asyncio
        while not self.inbox:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(data, str):
                raise ProtocolError("a text message from the node")
            self.inbox.extend(self.dec.messages(data))
        return self.inbox.pop(0)

    async def publish(self, topic, payload, **fields):
        await self.send(Message(PUBLISH, dict(fields, topic=topic), payload))

    async def close(self):
        await self.send(Message(GOODBYE))
        await self.ws.close()


class ShmRings:
    """A same-host agent's two rings (protocol.md §13): the region the node named in its 101,
    mapped from /dev/shm. Ring 0 is the node's (we read it), ring 1 ours (we write it). Header
    words and positions are written as whole 8-byte stores (ctypes), never byte by byte."""

    def __init__(self, name):
        import ctypes
        import mmap
        import os
        self._c = ctypes
        fd = os.open("/dev/shm/" + name, os.O_RDWR)
        try:
            self.mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        if bytes(self.mm[0:8]) != b"FLOWSHM1" or self._u32(8) != 2 or self._u32(12) != 1:
            raise ProtocolError("not a flowbus shared-memory region of version 2")
        self.cap = self._u64(16)
        self.rx = 4096                       # ring 0: node -> agent
        self.tx = 4096 + 384 + self.cap      # ring 1: agent -> node
        self.head = self._u64(self.rx + 128)
        self.tail = self._u64(self.tx)
        self.ring_owed = False                 # read() freed space the node waits for
        self._set_u32(256, os.getpid())      # attached: the node sees it when it reads REGISTER

    def _u64(self, off):
        return self._c.c_uint64.from_buffer(self.mm, off).value

    def _u32(self, off):
        return self._c.c_uint32.from_buffer(self.mm, off).value

    def _set_u64(self, off, v):
        self._c.c_uint64.from_buffer(self.mm, off).value = v

    def _set_u32(self, off, v):
        self._c.c_uint32.from_buffer(self.mm, off).value = v

    def read(self):
        """The next FLOW message the node wrote (bytes), or None."""
        data = self.rx + 384
        while True:
            off = self.head % self.cap
            w = self._u64(data + off)
            if w == 0:
                return None
            length, kind = w >> 32, w & 0xFFFFFFFF
            rec = 8 + ((length + 7) & ~7)
            if kind not in (1, 2) or rec > self.cap - off:
                raise ProtocolError("damaged ring")
            msg = bytes(self.mm[data + off + 8:data + off + 8 + length]) if kind == 1 else None
            self.mm[data + off + 8:data + off + rec] = bytes(rec - 8)   # zero it, header word last
            self._set_u64(data + off, 0)
            self.head += rec
            self._set_u64(self.rx + 128, self.head)                     # the space goes back
            if self._u32(self.rx + 260):       # the node waits for space: take the flag, ring it
                self._set_u32(self.rx + 260, 0)
                self.ring_owed = True
            if msg is not None:
                return msg

    def write(self, frame):
        """Writes one FLOW message as a record. Returns None if the ring is full, else whether the
        node parked (then it must be rung: an empty binary WebSocket message)."""
        data = self.tx + 384
        rec = 8 + ((len(frame) + 7) & ~7)
        off = self.tail % self.cap
        to_end = self.cap - off
        need = rec if rec <= to_end else to_end + rec
        if self.tail + need - self._u64(self.tx + 128) > self.cap:
            return None
        if rec > to_end:                       # a padding record to the end first
            self._set_u64(data + off, (to_end - 8) << 32 | 2)
            self.tail += to_end
            off = 0
        self.mm[data + off + 8:data + off + 8 + len(frame)] = frame
        self._set_u64(data + off, len(frame) << 32 | 1)   # the commit: the header word last
        self.tail += rec
        self._set_u64(self.tx, self.tail)
        if self._u32(self.tx + 256):           # the node parked: take the flag, ring it
            self._set_u32(self.tx + 256, 0)
            return True
        return False


class ShmAgent(Agent):
    """An agent that asks for shared memory (protocol.md §13): REGISTER over WebSocket, then every
    frame through the rings. It polls its ring (no parking), so the node never needs to ring it."""

    async def connect(self):
        self.ws = await websockets.connect(self.uri, max_size=1 << 20, compression=None,
                                           extra_headers={"Flowbus-Shm": "1"})
        name = self.ws.response_headers.get("Flowbus-Shm")
        if not name:
            raise ProtocolError("the node offered no shared memory")
        self.rings = ShmRings(name)
        await self.ws.send(self.enc.encode(Message(REGISTER, {"source": self.id, "agent_type": self.type,
                                                              "heartbeat_ms": self.heartbeat_ms})))
        welcome = await self.next()
        if welcome.type != WELCOME:
            raise ProtocolError("expected WELCOME, got %r" % welcome)
        return welcome

    async def send(self, m):
        import asyncio
        frame = self.enc.encode(m)
        while True:
            rung = self.rings.write(frame)
            if rung is not None:
                break
            await asyncio.sleep(0.001)          # full: the node frees space as it reads
        if rung:
            await self.ws.send(b"")             # the doorbell

    async def next(self, timeout=5.0):
        import asyncio
        deadline = time.monotonic() + timeout
        while not self.inbox:
            frame = self.rings.read()
            if self.rings.ring_owed:
                self.rings.ring_owed = False
                await self.ws.send(b"")         # the doorbell: space for the node
            if frame is not None:
                self.inbox.extend(self.dec.messages(frame))
                continue
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError()
            await asyncio.sleep(0.0005)
        return self.inbox.pop(0)
