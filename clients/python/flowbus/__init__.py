"""flowbus: an asyncio client for flowbus nodes (docs/protocol.md).

    import asyncio, flowbus

    async def main():
        async with flowbus.Client("ws://127.0.0.1:8081", "worker-1", "worker") as c:
            sub = await c.subscribe("tasks.>", queue="workers")
            c.publish("tasks.eu.new", b"summarize doc 42")
            task = await sub.next(timeout=2)
            print(task.topic, task.text)

    asyncio.run(main())
"""
from .client import Agent, Capability, Client, Ed25519Key, Priority, Received, Stats, Subscription
from .errors import (AgentUnavailable, CircuitOpen, ConnectionClosed, DuplicateAgent, FlowbusError, InvalidAgent,
                     InvalidPattern, InvalidTopic, MailboxFull, NoBuffer, NoCapableAgent, NodeError, NodeStopped,
                     NoResponders, NotPermitted, NotSubscribed, ProtocolError, RateLimited, RoutingError, StoreFailed,
                     Timeout, TooLarge, TooManySubscriptions, Unauthenticated, error_for)
from .streams import StreamError, Streams
from .protocol import (COORDINATION, PUBLISH, REPLY, REQUEST, TASK_ASSIGNMENT, TASK_RESULT, pattern_matches,
                       validate_pattern, validate_topic)

__version__ = "0.1.0"

__all__ = ["Client", "Ed25519Key", "Subscription", "Received", "Priority", "Agent", "Capability", "Stats", "FlowbusError",
           "ProtocolError", "ConnectionClosed", "NodeError", "RoutingError", "AgentUnavailable", "NoCapableAgent",
           "NoResponders", "Timeout", "MailboxFull", "InvalidTopic", "InvalidPattern", "InvalidAgent", "DuplicateAgent",
           "TooLarge", "NoBuffer", "NodeStopped", "NotSubscribed", "CircuitOpen", "TooManySubscriptions",
           "Unauthenticated", "NotPermitted", "RateLimited", "StoreFailed", "error_for", "validate_topic", "validate_pattern",
           "pattern_matches", "Streams", "StreamError", "PUBLISH", "REQUEST", "REPLY", "TASK_ASSIGNMENT", "TASK_RESULT", "COORDINATION"]
