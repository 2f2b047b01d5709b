"""Durable streams from Python (docs/streams.md): the node's stream API is the agent `$streams`,
asked with JSON requests; a consumer's records arrive as requests that the receiver acknowledges
by answering them.

    async with flowbus.Client(url, "worker-1") as c:
        await c.streams.add("jobs", ["jobs.>"], fsync="always")
        await c.streams.add_consumer("jobs", "proc", deliver_to="work.jobs")
        sub = await c.subscribe("work.jobs", queue="workers")
        msg = await sub.next()
        ...                      # msg.headers["stream-seq"], msg.headers["stream-topic"]
        c.ack(msg)               # or c.nak(msg), c.in_progress(msg), c.term(msg)
"""
import json
from typing import Any, Dict, List, Optional

from .errors import FlowbusError

API = "$streams"


class StreamError(FlowbusError):
    """The stream API's refusal: `code` is bad_request, not_found, exists, store_failed or unavailable."""

    def __init__(self, code: str, description: str):
        super().__init__("%s: %s" % (code, description))
        self.code = code
        self.description = description


def _settings(**given) -> Dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


class Streams:
    """`client.streams`: the stream API of the node the client is connected to."""

    def __init__(self, client):
        self._client = client

    async def _ask(self, request: Dict[str, Any], timeout: float = 5.0) -> Dict[str, Any]:
        from .client import Agent  # (client imports this module)
        r = await self._client.request(Agent(API), json.dumps(request).encode(), timeout)
        answer = json.loads(r.payload)
        if "error" in answer:
            raise StreamError(answer["error"].get("code", "error"), answer["error"].get("description", ""))
        return answer

    async def add(self, name: str, subjects: List[str], *, storage: Optional[str] = None, fsync: Optional[str] = None, group_ms: Optional[int] = None,
                  segment_mb: Optional[int] = None, max_bytes: Optional[int] = None, max_records: Optional[int] = None,
                  max_age_s: Optional[int] = None) -> Dict[str, Any]:
        """Adds a stream (the same settings again: its description, unchanged); its description."""
        req = _settings(op="stream.add", name=name, subjects=list(subjects), storage=storage, fsync=fsync, group_ms=group_ms,
                        segment_mb=segment_mb, max_bytes=max_bytes, max_records=max_records, max_age_s=max_age_s)
        return (await self._ask(req))["stream"]

    async def info(self, name: str) -> Dict[str, Any]:
        return (await self._ask({"op": "stream.info", "name": name}))["stream"]

    async def list(self) -> List[Dict[str, Any]]:
        return (await self._ask({"op": "stream.ls"}))["streams"]

    async def remove(self, name: str) -> None:
        await self._ask({"op": "stream.rm", "name": name})

    async def add_consumer(self, stream: str, name: Optional[str] = None, *, deliver_to: str,
                           durable: Optional[bool] = None, filter: Optional[str] = None, start: Optional[str] = None,
                           start_seq: Optional[int] = None, start_time_ns: Optional[int] = None,
                           ack_wait_ms: Optional[int] = None, max_in_flight: Optional[int] = None,
                           max_deliver: Optional[int] = None, backoff_ms: Optional[int] = None,
                           backoff_max_ms: Optional[int] = None, inactive_ms: Optional[int] = None) -> Dict[str, Any]:
        """A durable consumer (with a name) or an ephemeral one (durable=False); its description.
        deliver_to: a topic (a queue group on it shares the records) or "agent:ID"."""
        consumer = _settings(name=name, durable=durable, deliver_to=deliver_to, filter=filter, start=start,
                             start_seq=start_seq, start_time_ns=start_time_ns, ack_wait_ms=ack_wait_ms,
                             max_in_flight=max_in_flight, max_deliver=max_deliver, backoff_ms=backoff_ms,
                             backoff_max_ms=backoff_max_ms, inactive_ms=inactive_ms)
        return (await self._ask({"op": "consumer.add", "stream": stream, "consumer": consumer}))["consumer"]

    async def consumer_info(self, stream: str, name: str) -> Dict[str, Any]:
        return (await self._ask({"op": "consumer.info", "stream": stream, "name": name}))["consumer"]

    async def remove_consumer(self, stream: str, name: str) -> None:
        await self._ask({"op": "consumer.rm", "stream": stream, "name": name})
