// Typed errors that mirror the node's error codes (docs/protocol.md §9, §12): a routing refusal is
// 96 + n on the wire and one class here; the node's own reasons (64 and up) and the codec's (below
// 64) have theirs. Every error is a FlowbusError with `code` (the wire code, when there is one).
export class FlowbusError extends Error {
  constructor(message, code = undefined, reason = undefined) {
    super(message ?? reason);
    this.name = this.constructor.name;
    if (code !== undefined) this.code = code;
    this.reason = reason;
  }
}
/** A frame that breaks docs/protocol.md (codes 2-28). */
export class ProtocolError extends FlowbusError {}
/** The connection ended, and with reconnect off it stays so. */
export class ConnectionClosed extends FlowbusError {}
/** An ERROR of the node's own reasons (64-80): slow consumer, agent down, ... */
export class NodeError extends FlowbusError {}
/** A refusal: error code 96 + n. */
export class RoutingError extends FlowbusError {}

export const ROUTING_BASE = 96;
const routing = [
  [1, 'AgentUnavailable', 'agent_unavailable'], [2, 'NoCapableAgent', 'no_capable_agent'],
  [3, 'NoResponders', 'no_responders'], [4, 'Timeout', 'timeout'], [5, 'MailboxFull', 'mailbox_full'],
  [6, 'InvalidTopic', 'invalid_topic'], [7, 'InvalidPattern', 'invalid_pattern'], [8, 'InvalidAgent', 'invalid_agent'],
  [9, 'DuplicateAgent', 'duplicate_agent'], [10, 'TooLarge', 'too_large'], [11, 'NoBuffer', 'no_buffer'],
  [12, 'NodeStopped', 'node_stopped'], [13, 'NotSubscribed', 'not_subscribed'], [14, 'CircuitOpen', 'circuit_open'],
  [15, 'TooManySubscriptions', 'too_many_subscriptions'], [16, 'Unauthenticated', 'unauthenticated'],
  [17, 'NotPermitted', 'not_permitted'], [18, 'RateLimited', 'rate_limited'], [19, 'StoreFailed', 'store_failed'],
];
const byN = new Map();
function define(n, name, wire) {
  const cls = { [name]: class extends RoutingError {} }[name];
  cls.prototype.code = ROUTING_BASE + n;
  cls.prototype.errc = wire;
  byN.set(n, cls);
  return cls;
}
export const AgentUnavailable = define(...routing[0]);
export const NoCapableAgent = define(...routing[1]);
export const NoResponders = define(...routing[2]);
export const Timeout = define(...routing[3]);
export const MailboxFull = define(...routing[4]);
export const InvalidTopic = define(...routing[5]);
export const InvalidPattern = define(...routing[6]);
export const InvalidAgent = define(...routing[7]);
export const DuplicateAgent = define(...routing[8]);
export const TooLarge = define(...routing[9]);
export const NoBuffer = define(...routing[10]);
export const NodeStopped = define(...routing[11]);
export const NotSubscribed = define(...routing[12]);
export const CircuitOpen = define(...routing[13]);
export const TooManySubscriptions = define(...routing[14]);
export const Unauthenticated = define(...routing[15]);
export const NotPermitted = define(...routing[16]);
export const RateLimited = define(...routing[17]);
export const StoreFailed = define(...routing[18]);

const nodeReasons = {
  64: 'expected REGISTER', 65: 'already registered', 66: 'registration refused', 67: 'text message',
  68: 'unexpected type', 69: 'slow consumer', 70: 'too many connections', 72: 'agent down', 73: 'message too large',
  74: 'handler failed', 75: 'shared memory damaged', 76: 'authentication required', 77: 'authentication failed',
  78: 'token expired', 79: 'agent id not permitted', 80: 'connection rate limited',
};

/** The error for a wire error code (NACK, ERROR). */
export function errorFor(code, reason = undefined) {
  code = Number(code);
  if (code >= ROUTING_BASE) {
    const cls = byN.get(code - ROUTING_BASE);
    return cls ? new cls(reason ?? cls.name, code, reason) : new RoutingError(reason ?? `routing error ${code}`, code, reason);
  }
  if (code >= 76 && code <= 79) return new Unauthenticated(reason ?? nodeReasons[code], code, reason);
  if (code >= 64) return new NodeError(reason ?? nodeReasons[code] ?? `node error ${code}`, code, reason);
  return new ProtocolError(reason ?? `protocol error ${code}`, code, reason);
}
