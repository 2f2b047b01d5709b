"""Raw FLOW agents for the interoperability tests: the wire format of the Python package
(clients/python, written from docs/protocol.md alone, no flowbus code: frames, CRC32C, varints, the
string pool in both directions, BATCH) driven frame by frame over the node's WebSocket handshake. It
exists to prove the protocol is implementable outside C++; tests/interop/interop_test.py runs it
against a real `flowbus node`."""
import base64
import os
import sys
import time

import websockets

# The wire format is the Python package's (clients/python/flowbus/protocol.py), itself written from
# docs/protocol.md alone; this module adds raw agents that drive the protocol frame by frame.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
from flowbus.protocol import *  # noqa: E402,F401,F403


class Refused(ProtocolError):  # noqa: F405
    """Not the frame the handshake expects; args[1] is the node's frame (an ERROR, say)."""

    def __init__(self, *args):
        Exception.__init__(self, *args)


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
                raise Refused("expected CHALLENGE, got %r" % challenge, challenge)
            b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
            fields["public_key"] = b64(self.key.public_key())
            fields["signature"] = b64(self.key.sign(challenge.get("nonce").encode()))
        await self.send(Message(REGISTER, fields))
        welcome = await self.next()
        if welcome.type != WELCOME:
            raise Refused("expected WELCOME, got %r" % welcome, welcome)
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
