"""An asyncio client for a flowbus node (docs/protocol.md §12), on the `websockets` package.

    async with flowbus.Client("ws://127.0.0.1:8081", "worker-1", "worker") as c:
        sub = await c.subscribe("tasks.>", queue="workers")
        async for task in sub:
            c.publish("results." + task.topic, b"done")
        reply = await c.request("svc.summarize", b"text", timeout=2.0)

One connection per client, reconnected with exponential backoff and full jitter: it registers
again, subscribes again, and sends what was queued meanwhile. Sending never waits for the network:
messages queue, and the writer sends everything that queued while the previous write was in flight
as BATCH frames of up to 32 (smart batching). Delivery is at most once; `publish_acked` and
`acks=True` give at least once (the node's acknowledged delivery, docs/reliability.md).
"""
import asyncio
import collections
import itertools
import os
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple, Union

import websockets

from . import protocol as p
from .streams import Streams
from .errors import (ConnectionClosed, FlowbusError, InvalidPattern, InvalidTopic, MailboxFull, NodeError,
                     ProtocolError, RoutingError, Timeout, TooLarge, Unauthenticated, error_for)

__all__ = ["Client", "Subscription", "Received", "Priority", "Agent", "Capability", "Stats", "Ed25519Key"]

Payload = Union[bytes, bytearray, memoryview, str]


class Priority:
    CRITICAL, HIGH, NORMAL, LOW, BACKGROUND = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Agent:
    """A destination: one agent by its id."""
    id: str


@dataclass(frozen=True)
class Capability:
    """A destination: one live agent having the capability (the node picks, round robin)."""
    name: str


Destination = Union[str, Agent, Capability]  # a str is a topic


class Ed25519Key:
    """A public-key agent's key (`flowbus key gen`, a node with --auth key): signs the node's
    CHALLENGE. Needs the `cryptography` package (Debian's python3-cryptography)."""

    def __init__(self, private_key):
        from cryptography.hazmat.primitives import serialization
        self._k = private_key
        self._public = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                             serialization.PublicFormat.Raw)

    @classmethod
    def from_file(cls, path: str) -> "Ed25519Key":
        from cryptography.hazmat.primitives import serialization
        with open(path, "rb") as f:
            return cls(serialization.load_pem_private_key(f.read(), password=None))

    def public_key(self) -> bytes:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._k.sign(data)


def _b64url(b: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

_DATA_TYPES = frozenset({p.TASK_ASSIGNMENT, p.TASK_RESULT, p.COORDINATION, p.PUBLISH, p.REQUEST, p.REPLY})
_TYPE_NAMES = {p.TASK_ASSIGNMENT: "task_assignment", p.TASK_RESULT: "task_result", p.COORDINATION: "coordination",
               p.PUBLISH: "publish", p.REQUEST: "request", p.REPLY: "reply"}


class Received:
    """A message from the node: its routing fields, headers and payload."""

    __slots__ = ("type", "priority", "topic", "source", "target", "reply_to", "correlation_id", "message_id",
                 "deadline_ns", "timestamp_ns", "headers", "payload", "sequence")

    def __init__(self, m: p.Message):
        f = m.fields
        self.type: int = m.type
        self.priority: int = m.priority
        self.topic: Optional[str] = f.get("topic")
        self.source: Optional[str] = f.get("source")
        self.target: Optional[str] = f.get("target") or (f.get("capability") or [None])[0]
        self.reply_to: Optional[str] = f.get("reply_to")
        self.correlation_id: int = f.get("correlation_id", 0)
        self.message_id: int = f.get("message_id", 0)
        self.deadline_ns: int = f.get("deadline", 0)
        self.timestamp_ns: int = m.timestamp
        self.headers: Dict[str, str] = dict(f.get("header", []))
        self.payload: bytes = m.payload
        self.sequence: int = m.sequence

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, hex(self.type))

    @property
    def is_request(self) -> bool:
        return self.type == p.REQUEST

    @property
    def age(self) -> float:
        """Seconds since the sender sent it (by the two hosts' clocks)."""
        return max(0.0, (time.time_ns() - self.timestamp_ns) / 1e9)

    def __repr__(self):
        return "Received(%s %s from %s, %r)" % (self.type_name, self.topic or self.target, self.source, self.payload[:40])


Handler = Callable[[Received], Union[None, Awaitable[None]]]


class Subscription:
    """A pattern's messages: iterate it (`async for m in sub`), or give a handler to subscribe()."""

    def __init__(self, client: "Client", pattern: str, queue: Optional[str], handler: Optional[Handler]):
        self.client, self.pattern, self.queue, self.handler = client, pattern, queue, handler
        self._items: "asyncio.Queue[Optional[Received]]" = asyncio.Queue()
        self.active = True

    def __aiter__(self) -> AsyncIterator[Received]:
        return self

    async def __anext__(self) -> Received:
        m = await self._items.get()
        if m is None:
            raise StopAsyncIteration
        self.client._handled(m)
        return m

    async def next(self, timeout: Optional[float] = None) -> Received:
        """The next message; Timeout if none comes in `timeout` seconds."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except asyncio.TimeoutError:
            raise Timeout("no message on %s in %ss" % (self.pattern, timeout)) from None

    async def unsubscribe(self) -> None:
        await self.client._unsubscribe(self)


@dataclass
class Stats:
    sent: int = 0            # messages written (each of a BATCH)
    received: int = 0        # data messages received
    writes: int = 0          # WebSocket messages written
    batches: int = 0         # of them, BATCH frames
    connects: int = 0
    acked: int = 0           # publish_acked messages the node confirmed
    redelivered: int = 0     # publish_acked messages sent again
    duplicates: int = 0      # received messages dropped as repeats (source, message_id)
    handler_failures: int = 0
    holds: int = 0           # CREDIT 0 from the node


class _Dedup:
    """Repeated (source, message_id) pairs: the last `window` ids per source, bounded sources."""

    def __init__(self, window=4096, sources=1024):
        self.window, self.sources = window, sources
        self.seen: "collections.OrderedDict[str, Tuple[set, collections.deque]]" = collections.OrderedDict()

    def repeat(self, source, message_id) -> bool:
        entry = self.seen.get(source)
        if entry is None:
            if len(self.seen) >= self.sources:
                self.seen.popitem(last=False)
            entry = self.seen[source] = (set(), collections.deque())
        ids, order = entry
        self.seen.move_to_end(source)
        if message_id in ids:
            return True
        ids.add(message_id)
        order.append(message_id)
        if len(order) > self.window:
            ids.discard(order.popleft())
        return False


def _bytes(payload: Payload) -> bytes:
    return payload.encode() if isinstance(payload, str) else bytes(payload)


class Client:
    """An agent connected to a node. Every method runs on the event loop of connect()."""

    def __init__(self, url: str = "ws://127.0.0.1:8081", agent_id: Optional[str] = None, agent_type: str = "python", *,
                 capabilities: Iterable[str] = (), token: Optional[str] = None, key: Any = None, ssl: Any = None,
                 priority: int = Priority.NORMAL, heartbeat: float = 1.0, reconnect: bool = True,
                 backoff: Tuple[float, float] = (0.05, 2.0), receive_window: int = 1024, acks: bool = False,
                 ack_timeout: float = 1.0, ack_attempts: int = 5, max_batch: int = 32, max_queued: int = 65536,
                 max_message: int = 65536, on_message: Optional[Handler] = None):
        self.url = url
        self.id = agent_id or "python-%d-%d" % (os.getpid(), random.randrange(1 << 30))
        self.type = agent_type
        self.capabilities = list(capabilities)
        self.token, self.ssl, self.priority = token, ssl, priority
        # a public-key agent: an Ed25519Key (or a path to its PEM), or any object with
        # public_key() -> 32 raw bytes and sign(bytes) -> 64 bytes
        self.key = Ed25519Key.from_file(key) if isinstance(key, str) else key
        self.heartbeat, self.reconnect, self.backoff = heartbeat, reconnect, backoff
        self.receive_window, self.acks = receive_window, acks
        self.ack_timeout, self.ack_attempts = ack_timeout, ack_attempts
        self.max_batch, self.max_queued, self.max_message = max_batch, max_queued, max_message
        self.on_message = on_message
        self.stats = Stats()
        self._queue: "collections.deque[p.Message]" = collections.deque()  # data, in order
        self._control: "collections.deque[p.Message]" = collections.deque()  # ACK, CREDIT, SUBSCRIBE...: first
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._subs: List[Subscription] = []
        self._inbox: "asyncio.Queue[Received]" = asyncio.Queue()  # what no subscription takes, without on_message
        self._ids = itertools.count(1)
        self._answers: Dict[int, asyncio.Future] = {}   # message_id -> ACK/NACK future (subscriptions, acked publishes)
        self._requests: Dict[int, asyncio.Future] = {}  # correlation_id -> reply future
        self._dedup = _Dedup()
        self._held = False
        self._resubscribing: set = set()  # message ids of SUBSCRIBEs sent again, not answered yet
        self._resubscribed_by = 0.0
        self._granted = 0      # handled since our last CREDIT
        self._ack_owed = -1    # acks=True: the last node sequence handled, not yet acknowledged
        self._ws = None
        self._welcome: Optional[asyncio.Future] = None
        self._runner: Optional[asyncio.Task] = None
        self._closing = False
        self._last_error: Optional[FlowbusError] = None
        self._last_write = 0.0

    # ---- connection --------------------------------------------------------------------------

    async def connect(self, timeout: float = 5.0) -> "Client":
        """Connects and registers; returns once the node's WELCOME came. Raises the node's refusal
        (DuplicateAgent, Unauthenticated, ...), or Timeout (with reconnect on it goes on trying)."""
        loop = asyncio.get_running_loop()
        self._welcome = loop.create_future()
        self._runner = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(self._welcome), timeout)
        except asyncio.TimeoutError:
            if not self.reconnect:
                await self.close()
            raise Timeout("no WELCOME from %s in %ss" % (self.url, timeout)) from None
        except FlowbusError:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> "Client":
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._welcome is not None and self._welcome.done() and \
            not self._welcome.exception()

    @property
    def held(self) -> bool:
        """The node asked us to hold (CREDIT 0): a recipient is above its high water mark."""
        return self._held

    async def close(self, timeout: float = 5.0) -> None:
        """Writes what is queued (for at most `timeout`), says GOODBYE, closes. Idempotent."""
        if self._closing:
            return
        if self._ws is not None and self._queue:
            try:
                await asyncio.wait_for(self.flush(), timeout)
            except asyncio.TimeoutError:
                pass
        self._closing = True
        if self._ws is not None:
            try:
                await self._ws.send(self._enc.encode(p.Message(p.GOODBYE)))
                await self._ws.close()
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._fail_all(ConnectionClosed("closed"))
        for s in self._subs:
            s._items.put_nowait(None)

    async def flush(self) -> None:
        """Waits until everything queued so far is written."""
        while self._queue or self._control:
            self._drained.clear()
            self._wake.set()
            await self._drained.wait()

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._closing:
            try:
                await self._session()
                delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except (Unauthenticated, RoutingError) as e:  # refused registration: trying again will not help
                if self._welcome is not None and not self._welcome.done():
                    self._welcome.set_exception(e)
                    self._welcome.exception()  # retrieved: connect() raises it
                    return
                self._last_error = e
                if isinstance(e, Unauthenticated):
                    return
            except (OSError, websockets.WebSocketException, ProtocolError, NodeError, ConnectionClosed) as e:
                self._last_error = e if isinstance(e, FlowbusError) else ConnectionClosed(str(e))
            self._ws = None
            if not self.reconnect or self._closing:
                self._fail_all(self._last_error or ConnectionClosed("the connection ended"))
                if self._welcome is not None and not self._welcome.done():
                    self._welcome.set_exception(self._last_error or ConnectionClosed("the connection ended"))
                    self._welcome.exception()
                return
            await asyncio.sleep(random.uniform(0, delay))  # full jitter
            delay = min(self.backoff[1], delay * 2)

    async def _session(self) -> None:
        tls = {"ssl": self.ssl} if self.url.startswith("wss:") else {}
        ws = await websockets.connect(self.url, max_size=self.max_message, compression=None, **tls)
        try:
            self._enc, self._dec = p.Encoder(), p.Decoder()
            fields: Dict[str, Any] = {"source": self.id, "agent_type": self.type,
                                      "heartbeat_ms": int(self.heartbeat * 1000)}
            if self.capabilities:
                fields["capability"] = self.capabilities
            if self.token:
                fields["token"] = self.token
            if self.receive_window:
                fields["credit"] = self.receive_window
            if self.key is not None:  # §12 "Public-key agents": sign the CHALLENGE's nonce as sent
                first = self._dec.messages(await asyncio.wait_for(ws.recv(), 10))
                challenge = next((m for m in first if m.type == p.CHALLENGE), None)
                if challenge is None:
                    raise ProtocolError("a key was given, but the node sent no CHALLENGE (it has no --auth key)")
                fields["public_key"] = _b64url(self.key.public_key())
                fields["signature"] = _b64url(self.key.sign(challenge.get("nonce").encode()))
            await ws.send(self._enc.encode(p.Message(p.REGISTER, fields, flags=p.ACK_REQUESTED if self.acks else 0,
                                                     priority=self.priority)))
            while True:  # WELCOME, or the refusal's ERRORs
                msgs = self._dec.messages(await asyncio.wait_for(ws.recv(), 10))
                errors = [m for m in msgs if m.type == p.ERROR]
                if errors:  # the first says why (96 + n, or the node's 76-79)
                    e = errors[0]
                    raise error_for(e.get("error_code", 0), dict(e.get("header", [])).get("reason"))
                if any(m.type == p.WELCOME for m in msgs):
                    break
            self._ws = ws
            self._held, self._granted, self._ack_owed = False, 0, -1
            self._resubscribing.clear()
            self.stats.connects += 1
            for s in self._subs:  # subscribe again after a reconnect, before sending what queued meanwhile
                mid = next(self._ids)
                self._resubscribing.add(mid)
                self._control.append(self._subscribe_frame(s, p.SUBSCRIBE, mid))
            self._resubscribed_by = time.monotonic() + 5.0
            if self._welcome is not None and not self._welcome.done():
                self._welcome.set_result(True)
            tasks = [asyncio.create_task(self._reader(ws)), asyncio.create_task(self._writer(ws)),
                     asyncio.create_task(self._heartbeats())]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    if t.exception():
                        raise t.exception()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._ws = None
            await ws.close()

    # ---- writing -----------------------------------------------------------------------------

    async def _writer(self, ws) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._control or (self._queue and self._may_send(self._queue[0])):
                batch: List[p.Message] = []
                size = p.HEADER
                room = self.max_batch - 1  # a slot for the ACK owed
                while self._control and len(batch) < room:
                    batch.append(self._control.popleft())
                while self._queue and len(batch) < room:
                    m = self._queue[0]
                    if not self._may_send(m):
                        break
                    est = p.HEADER + 64 + len(m.payload) + sum(len(str(v)) for v in m.fields.values())
                    if batch and size + est > self.max_message:
                        break
                    size += est
                    batch.append(self._queue.popleft())
                if self._ack_owed >= 0:
                    batch.append(p.Message(p.ACK, {"message_id": self._ack_owed}))
                    self._ack_owed = -1
                await ws.send(self._enc.encode_many(batch))
                self._last_write = time.monotonic()
                self.stats.writes += 1
                self.stats.sent += len(batch)
                if len(batch) > 1:
                    self.stats.batches += 1
            if self._ack_owed >= 0:
                await ws.send(self._enc.encode(p.Message(p.ACK, {"message_id": self._ack_owed})))
                self._ack_owed = -1
            if not self._queue and not self._control:
                self._drained.set()

    def _may_send(self, m: p.Message) -> bool:
        """Data waits while the node holds us (CRITICAL excepted), and after a reconnect until the
        subscriptions are back (so what queued meanwhile reaches them; at most 5 s)."""
        if self._resubscribing and time.monotonic() < self._resubscribed_by:
            return False
        return not (self._held and m.priority != Priority.CRITICAL)

    def _enqueue(self, m: p.Message, control: bool = False) -> None:
        if control:
            self._control.append(m)
        else:
            if len(self._queue) >= self.max_queued:
                raise MailboxFull("%d messages queued (max_queued)" % len(self._queue))
            self._queue.append(m)
        self._wake.set()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self._wake.set()  # data held back for the re-subscriptions goes once their time is up
            if time.monotonic() - self._last_write >= self.heartbeat * 0.9:
                self._enqueue(p.Message(p.HEARTBEAT), control=True)

    # ---- sending -----------------------------------------------------------------------------

    def _data(self, mtype: int, to: Optional[Destination], payload: Payload, priority: Optional[int],
              headers: Optional[Dict[str, str]], deadline: Optional[float], broadcast_type: Optional[str] = None,
              broadcast: bool = False) -> p.Message:
        body = _bytes(payload)
        if len(body) + p.HEADER + 512 > self.max_message:
            raise TooLarge("%d bytes do not fit a %d-byte frame" % (len(body), self.max_message))
        fields: Dict[str, Any] = {}
        flags = 0
        if broadcast:
            flags |= p.BROADCAST
            if broadcast_type:
                fields["agent_type"] = broadcast_type
        elif isinstance(to, Agent):
            fields["target"] = to.id
        elif isinstance(to, Capability):
            fields["capability"] = [to.name]
        else:
            why = p.validate_topic(to)
            if why:
                raise InvalidTopic("%r: %s" % (to, why))
            fields["topic"] = to
        if headers:
            fields["header"] = list(headers.items())
        if deadline is not None:  # seconds from now
            fields["deadline"] = time.time_ns() + int(deadline * 1e9)
        return p.Message(mtype, fields, body, flags=flags, priority=self.priority if priority is None else priority)

    def publish(self, topic: str, payload: Payload, *, priority: Optional[int] = None,
                headers: Optional[Dict[str, str]] = None, deadline: Optional[float] = None,
                type: int = p.PUBLISH) -> None:  # noqa: A002 - the frame's type
        """Queues a message to `topic` (at most once). `deadline`: seconds from now, after which the
        node drops it instead of delivering it. Raises InvalidTopic, TooLarge, MailboxFull at once."""
        self._enqueue(self._data(type, topic, payload, priority, headers, deadline))

    def send(self, to: Union[Agent, Capability, str], payload: Payload, *, priority: Optional[int] = None,
             headers: Optional[Dict[str, str]] = None, deadline: Optional[float] = None,
             type: int = p.PUBLISH) -> None:  # noqa: A002
        """To one agent (an id or Agent), one capable agent (Capability), or a topic."""
        dest = Agent(to) if isinstance(to, str) else to
        self._enqueue(self._data(type, dest, payload, priority, headers, deadline))

    def broadcast(self, payload: Payload, agent_type: Optional[str] = None, *, priority: Optional[int] = None,
                  type: int = p.COORDINATION) -> None:  # noqa: A002
        """To every agent, or every agent of `agent_type`."""
        self._enqueue(self._data(type, None, payload, priority, None, None, agent_type, broadcast=True))

    async def publish_acked(self, topic: str, payload: Payload, *, priority: Optional[int] = None,
                            headers: Optional[Dict[str, str]] = None, deadline: Optional[float] = None) -> None:
        """At least once: returns once the node queued it for every current recipient; raises its
        refusal (NoResponders, NotPermitted, ...) or Timeout after ack_attempts x ack_timeout. A
        message unanswered in ack_timeout is sent again, same message id (receivers drop repeats)."""
        m = self._data(p.PUBLISH, topic, payload, priority, headers, deadline)
        mid = next(self._ids)
        m.fields["message_id"] = mid
        m.flags |= p.ACK_REQUESTED
        fut = asyncio.get_running_loop().create_future()
        self._answers[mid] = fut
        try:
            for attempt in range(self.ack_attempts):
                if attempt:
                    m.flags |= p.REDELIVERY
                    self.stats.redelivered += 1
                self._enqueue(m)
                try:
                    await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout)
                    self.stats.acked += 1
                    return
                except asyncio.TimeoutError:
                    continue
            raise Timeout("%s: not acknowledged after %d attempts" % (topic, self.ack_attempts))
        finally:
            self._answers.pop(mid, None)

    async def request(self, to: Destination, payload: Payload, timeout: float = 2.0, *,
                      priority: Optional[int] = None, headers: Optional[Dict[str, str]] = None) -> Received:
        """The reply, or the node's refusal (NoResponders, AgentUnavailable, NoCapableAgent) or Timeout."""
        m = self._data(p.REQUEST, to, payload, priority, headers, None)
        cid = next(self._ids)
        m.fields["correlation_id"] = cid
        fut = asyncio.get_running_loop().create_future()
        self._requests[cid] = fut
        try:
            self._enqueue(m)
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout("no reply from %s in %ss" % (to, timeout)) from None
        finally:
            self._requests.pop(cid, None)

    def respond(self, req: Received, payload: Payload, *, headers: Optional[Dict[str, str]] = None) -> None:
        """Answers a request (to its reply_to, with its correlation id and priority)."""
        if not req.reply_to:
            raise FlowbusError("not a request: nothing to reply to")
        m = self._data(p.REPLY, Agent(req.reply_to), payload, req.priority, headers, None)
        m.fields["correlation_id"] = req.correlation_id
        self._enqueue(m)

    # ---- durable streams (docs/streams.md) ------------------------------------------------------

    @property
    def streams(self) -> Streams:
        """The node's stream API: add, info, list, remove streams; add_consumer and so on."""
        return Streams(self)

    def ack(self, msg: Received) -> None:
        """Acknowledges a stream consumer's record: it is not sent again."""
        self.respond(msg, b"")

    def nak(self, msg: Received) -> None:
        """Asks for a stream consumer's record again, after the consumer's backoff."""
        self.respond(msg, b"-NAK")

    def in_progress(self, msg: Received) -> None:
        """Still working on a stream consumer's record: its ack wait starts again."""
        self.respond(msg, b"+WPI")

    def term(self, msg: Received) -> None:
        """Never again: the record goes to the node's poison dead-letter queue."""
        self.respond(msg, b"+TERM")

    # ---- subscribing -------------------------------------------------------------------------

    def _subscribe_frame(self, s: Subscription, mtype: int, mid: int) -> p.Message:
        fields: Dict[str, Any] = {"topic": s.pattern, "message_id": mid}
        if s.queue:
            fields["queue_group"] = s.queue
        return p.Message(mtype, fields)

    async def _answered(self, m: p.Message, timeout: float) -> None:
        mid = m.fields["message_id"]
        fut = asyncio.get_running_loop().create_future()
        self._answers[mid] = fut
        try:
            self._enqueue(m, control=True)
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout("no answer from the node in %ss" % timeout) from None
        finally:
            self._answers.pop(mid, None)

    async def subscribe(self, pattern: str, handler: Optional[Handler] = None, *, queue: Optional[str] = None,
                        timeout: float = 5.0) -> Subscription:
        """Subscribes (again after every reconnect) once the node accepted; raises its refusal
        (InvalidPattern, NotPermitted, TooManySubscriptions). `handler` (plain or async) is called
        for each message; without one, iterate the Subscription."""
        why = p.validate_pattern(pattern)
        if why:
            raise InvalidPattern("%r: %s" % (pattern, why))
        s = Subscription(self, pattern, queue, handler)
        await self._answered(self._subscribe_frame(s, p.SUBSCRIBE, next(self._ids)), timeout)
        self._subs.append(s)
        return s

    async def _unsubscribe(self, s: Subscription, timeout: float = 5.0) -> None:
        if s in self._subs:
            self._subs.remove(s)
            s.active = False
            s._items.put_nowait(None)
            await self._answered(self._subscribe_frame(s, p.UNSUBSCRIBE, next(self._ids)), timeout)

    async def messages(self) -> AsyncIterator[Received]:
        """What no subscription takes (unicast, broadcasts), when there is no on_message."""
        while True:
            m = await self._inbox.get()
            self._handled(m)
            yield m

    # ---- receiving ---------------------------------------------------------------------------

    async def _reader(self, ws) -> None:
        async for data in ws:
            if isinstance(data, str):
                raise ProtocolError("a text message from the node")
            for m in self._dec.messages(data):
                await self._dispatch(m)

    def _handled(self, m: Received) -> None:
        """A data message was handled: grant credit every half window; acknowledge it (acks=True)."""
        if self.acks:
            self._ack_owed = max(self._ack_owed, m.sequence)
            self._wake.set()
        if self.receive_window:
            self._granted += 1
            if self._granted * 2 >= self.receive_window:
                self._enqueue(p.Message(p.CREDIT, {"credit": self._granted}), control=True)
                self._granted = 0

    async def _dispatch(self, m: p.Message) -> None:
        t = m.type
        if t in (p.ACK, p.NACK) and m.get("message_id") in self._resubscribing:
            self._resubscribing.discard(m.get("message_id"))
            self._wake.set()
        if t == p.ACK:
            fut = self._answers.get(m.get("message_id"))
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif t == p.NACK:
            fut = self._answers.get(m.get("message_id"))
            if fut is not None and not fut.done():
                fut.set_exception(error_for(m.get("error_code", 0), dict(m.get("header", [])).get("reason")))
        elif t == p.ERROR:
            err = error_for(m.get("error_code", 0), dict(m.get("header", [])).get("reason"))
            fut = self._requests.get(m.get("correlation_id", -1))
            if fut is not None and not fut.done():
                fut.set_exception(err)
            else:
                self._last_error = err  # the close follows
        elif t == p.CREDIT:
            self._held = m.get("credit", 0) == 0
            if self._held:
                self.stats.holds += 1
            else:
                self._wake.set()
        elif t == p.GOODBYE:
            raise ConnectionClosed("the node said GOODBYE")
        elif t in _DATA_TYPES:
            r = Received(m)
            if t == p.REPLY:  # to a request of ours; one that timed out is dropped
                fut = self._requests.get(r.correlation_id)
                if fut is not None and not fut.done():
                    fut.set_result(r)
                self._handled(r)
                return
            if r.message_id and r.source and self._dedup.repeat(r.source, r.message_id):
                self.stats.duplicates += 1
                self._handled(r)
                return
            self.stats.received += 1
            await self._deliver(r)

    async def _deliver(self, r: Received) -> None:
        targets = [s for s in self._subs if r.topic is not None and p.pattern_matches(s.pattern, r.topic)]
        if not targets:
            if self.on_message is not None:
                await self._call(self.on_message, r)
            else:
                self._inbox.put_nowait(r)
            return
        for s in targets[:1]:  # the node sends one copy per agent: the first matching subscription takes it
            if s.handler is not None:
                await self._call(s.handler, r)
            else:
                s._items.put_nowait(r)

    async def _call(self, handler: Handler, r: Received) -> None:
        try:
            out = handler(r)
            if asyncio.iscoroutine(out):
                await out
        except Exception:  # noqa: BLE001 - a failed handler: NACK it with acks (the node retries)
            self.stats.handler_failures += 1
            if self.acks:
                self._enqueue(p.Message(p.NACK, {"message_id": r.sequence, "error_code": 74}), control=True)
                self._granted += 1
                return
        self._handled(r)

    def _fail_all(self, err: FlowbusError) -> None:
        for fut in list(self._answers.values()) + list(self._requests.values()):
            if not fut.done():
                fut.set_exception(err)
                fut.exception()
