"""Typed errors that mirror the node's error codes (docs/protocol.md §9 and §12): a routing
refusal is `96 + n` on the wire and one class here; the node's own reasons (64 and up) and the
codec's (below 64) have theirs."""

__all__ = ["FlowbusError", "ProtocolError", "ConnectionClosed", "NodeError", "RoutingError", "AgentUnavailable",
           "NoCapableAgent", "NoResponders", "Timeout", "MailboxFull", "InvalidTopic", "InvalidPattern", "InvalidAgent",
           "DuplicateAgent", "TooLarge", "NoBuffer", "NodeStopped", "NotSubscribed", "CircuitOpen",
           "TooManySubscriptions", "Unauthenticated", "NotPermitted", "RateLimited", "StoreFailed", "error_for",
           "ROUTING_BASE"]

ROUTING_BASE = 96


class FlowbusError(Exception):
    """Every error of this package. `code`: the wire error code, when there is one."""

    code = None

    def __init__(self, message=None, code=None, reason=None):
        self.reason = reason
        if code is not None:
            self.code = code
        super().__init__(message or reason or self.__class__.__name__)


class ProtocolError(FlowbusError):
    """A frame that breaks docs/protocol.md (ours or the node's; codes 2-28)."""


class ConnectionClosed(FlowbusError):
    """The connection ended, and with reconnect off it stays so (`reason`: the node's, if it said)."""


class NodeError(FlowbusError):
    """An ERROR of the node's own reasons (64-80): slow consumer, agent down, too many connections..."""


class RoutingError(FlowbusError):
    """A refusal of a message, subscription or registration: error code 96 + n."""

    n = None

    @property
    def name(self):
        return _NAMES[self.n]


def _routing(n, name, doc, *bases):
    cls = type(name, (RoutingError, *bases), {"__doc__": doc, "n": n, "code": ROUTING_BASE + n})
    return cls


AgentUnavailable = _routing(1, "AgentUnavailable", "No such agent, or it is down.")
NoCapableAgent = _routing(2, "NoCapableAgent", "No live agent has the capability.")
NoResponders = _routing(3, "NoResponders", "Nobody subscribes to the request's (or acked publish's) topic.")
Timeout = _routing(4, "Timeout", "No answer in time (a request, an acknowledged publish, a connect).", TimeoutError)
MailboxFull = _routing(5, "MailboxFull", "A recipient's queue is full (or ours: the send queue).")
InvalidTopic = _routing(6, "InvalidTopic", "Empty, an empty token, a wildcard in a published topic, too long.")
InvalidPattern = _routing(7, "InvalidPattern", "A subscription pattern the rules refuse.")
InvalidAgent = _routing(8, "InvalidAgent", "Registration refused: an empty or too long id, a bad heartbeat.")
DuplicateAgent = _routing(9, "DuplicateAgent", "Registration refused: the id is taken.")
TooLarge = _routing(10, "TooLarge", "The message does not fit the largest frame.")
NoBuffer = _routing(11, "NoBuffer", "The node ran out of buffers: try again later.")
NodeStopped = _routing(12, "NodeStopped", "The node is stopping.")
NotSubscribed = _routing(13, "NotSubscribed", "Unsubscribe of a pattern the agent did not hold.")
CircuitOpen = _routing(14, "CircuitOpen", "The recipient's circuit breaker is open.")
TooManySubscriptions = _routing(15, "TooManySubscriptions", "The agent holds the node's maximum of subscriptions.")
Unauthenticated = _routing(16, "Unauthenticated", "Credentials refused: none, invalid, expired, or not for this id "
                                                  "(the node's 76-79; `code` says which).")
NotPermitted = _routing(17, "NotPermitted", "The agent's permissions refuse this publish or subscription.")
RateLimited = _routing(18, "RateLimited", "The agent sends above its rate limit.")
StoreFailed = _routing(19, "StoreFailed", "A stream among the recipients could not store the message (its disk).")

_BY_N = {c.n: c for c in (AgentUnavailable, NoCapableAgent, NoResponders, Timeout, MailboxFull, InvalidTopic,
                          InvalidPattern, InvalidAgent, DuplicateAgent, TooLarge, NoBuffer, NodeStopped, NotSubscribed,
                          CircuitOpen, TooManySubscriptions, Unauthenticated, NotPermitted, RateLimited, StoreFailed)}
_NAMES = {1: "agent_unavailable", 2: "no_capable_agent", 3: "no_responders", 4: "timeout", 5: "mailbox_full",
          6: "invalid_topic", 7: "invalid_pattern", 8: "invalid_agent", 9: "duplicate_agent", 10: "too_large",
          11: "no_buffer", 12: "node_stopped", 13: "not_subscribed", 14: "circuit_open",
          15: "too_many_subscriptions", 16: "unauthenticated", 17: "not_permitted", 18: "rate_limited",
          19: "store_failed"}
_NODE = {64: "expected REGISTER", 65: "already registered", 66: "registration refused", 67: "text message",
         68: "unexpected type", 69: "slow consumer", 70: "too many connections", 72: "agent down",
         73: "message too large", 74: "handler failed", 75: "shared memory damaged", 76: "authentication required",
         77: "authentication failed", 78: "token expired", 79: "agent id not permitted",
         80: "connection rate limited"}


def error_for(code, reason=None):
    """The exception for a wire error code (NACK, ERROR)."""
    if code >= ROUTING_BASE:
        cls = _BY_N.get(code - ROUTING_BASE)
        if cls is not None:
            return cls(reason or cls.__name__, code, reason)
        return RoutingError(reason or "routing error %d" % code, code, reason)
    if 76 <= code <= 79:
        return Unauthenticated(reason or _NODE[code], code, reason)
    if code >= 64:
        return NodeError(reason or _NODE.get(code, "node error %d" % code), code, reason)
    return ProtocolError(reason or "protocol error %d" % code, code, reason)
