// Types of flowbus.js (the JavaScript client of flowbus nodes).
export declare const Priority: Readonly<{ CRITICAL: 0; HIGH: 1; NORMAL: 2; LOW: 3; BACKGROUND: 4 }>;
export declare const MessageType: Readonly<{
  TASK_ASSIGNMENT: 1; TASK_RESULT: 2; COORDINATION: 3; PUBLISH: 0x14; REQUEST: 0x15; REPLY: 0x16;
}>;
export type Payload = string | Uint8Array | ArrayBuffer;
export type Destination = string | { agent: string } | { capability: string };
export declare function agent(id: string): { agent: string };
export declare function capability(name: string): { capability: string };

export interface SendOptions {
  priority?: number;
  headers?: Record<string, string>;
  /** from now; past it the node drops the message instead of delivering it */
  deadlineMs?: number;
  /** a data type of MessageType (default PUBLISH; broadcast: COORDINATION) */
  type?: number;
}

export declare class Received {
  type: number;
  priority: number;
  topic?: string;
  source?: string;
  target?: string;
  replyTo?: string;
  correlationId: number | bigint;
  messageId: number | bigint;
  deadlineNs: bigint;
  timestampNs: bigint;
  headers: Record<string, string>;
  payload: Uint8Array;
  sequence: number;
  readonly text: string;
  readonly isRequest: boolean;
  readonly ageMs: number;
}

export type Handler = (m: Received) => void | Promise<void>;

export declare class Subscription implements AsyncIterable<Received> {
  readonly pattern: string;
  readonly queue?: string;
  next(timeoutMs?: number): Promise<Received | null>;
  unsubscribe(): Promise<void>;
  [Symbol.asyncIterator](): AsyncIterator<Received>;
}

export interface Ed25519Signer { publicKey: Uint8Array; sign(bytes: Uint8Array): Promise<Uint8Array> | Uint8Array; }
/** Node.js: a signer from a PEM of `flowbus key gen`. */
export declare function ed25519Key(pem: string): Promise<Ed25519Signer>;

export interface ClientOptions {
  url?: string;
  id?: string;
  type?: string;
  capabilities?: string[];
  token?: string;
  /** a public-key agent (a node with --auth key): signs the node's CHALLENGE */
  key?: Ed25519Signer;
  priority?: number;
  heartbeatMs?: number;
  reconnect?: boolean;
  backoffMs?: [number, number];
  receiveWindow?: number;
  acks?: boolean;
  ackTimeoutMs?: number;
  ackAttempts?: number;
  maxBatch?: number;
  maxQueued?: number;
  maxMessage?: number;
  onMessage?: Handler;
  /** a WebSocket class (default: the global one, else the `ws` package) */
  WebSocket?: unknown;
  /** the `ws` package's options (TLS: { ca }) */
  wsOptions?: unknown;
}

export interface Stats {
  sent: number; received: number; writes: number; batches: number; connects: number; acked: number;
  redelivered: number; duplicates: number; handlerFailures: number; holds: number;
}

export declare class Client {
  constructor(options?: ClientOptions);
  readonly id: string;
  readonly connected: boolean;
  readonly held: boolean;
  readonly stats: Stats;
  onMessage?: Handler;
  connect(options?: { timeoutMs?: number }): Promise<Client>;
  close(options?: { timeoutMs?: number }): Promise<void>;
  flush(): Promise<void>;
  publish(topic: string, payload: Payload, options?: SendOptions): void;
  send(to: string | { agent: string } | { capability: string }, payload: Payload, options?: SendOptions): void;
  broadcast(payload: Payload, options?: SendOptions & { agentType?: string }): void;
  publishAcked(topic: string, payload: Payload, options?: SendOptions): Promise<void>;
  request(to: Destination, payload: Payload, options?: SendOptions & { timeoutMs?: number }): Promise<Received>;
  respond(request: Received, payload: Payload, options?: SendOptions): void;
  /** The node's stream API (docs/streams.md). */
  readonly streams: Streams;
  /** A stream consumer's record: acknowledged / again after the backoff / still working / never again. */
  ack(msg: Received): void;
  nak(msg: Received): void;
  inProgress(msg: Received): void;
  term(msg: Received): void;
  subscribe(pattern: string, handler?: Handler | null, options?: { queue?: string; timeoutMs?: number }): Promise<Subscription>;
  messages(): Subscription;
}

export interface StreamSettings {
  storage?: 'file' | 'memory'; fsync?: 'always' | 'group' | 'never'; groupMs?: number; segmentMb?: number;
  maxBytes?: number; maxRecords?: number; maxAgeS?: number;
}
export interface ConsumerSettings {
  deliverTo: string; durable?: boolean; filter?: string; start?: 'first' | 'last' | 'new' | 'sequence' | 'time';
  startSeq?: number; startTimeNs?: number | bigint; ackWaitMs?: number; maxInFlight?: number; maxDeliver?: number;
  backoffMs?: number; backoffMaxMs?: number; inactiveMs?: number;
}
/** Descriptions as the node answers them (docs/streams.md, "The stream API"). */
export type StreamInfo = Record<string, any>;
export type ConsumerInfo = Record<string, any>;
export declare class Streams {
  add(name: string, subjects: string[], settings?: StreamSettings): Promise<StreamInfo>;
  info(name: string): Promise<StreamInfo>;
  list(): Promise<StreamInfo[]>;
  remove(name: string): Promise<void>;
  addConsumer(stream: string, name: string | undefined, settings: ConsumerSettings): Promise<ConsumerInfo>;
  consumerInfo(stream: string, name: string): Promise<ConsumerInfo>;
  removeConsumer(stream: string, name: string): Promise<void>;
}

export declare class FlowbusError extends Error { code?: number; reason?: string; }
export declare class StreamError extends FlowbusError { code: any; description: string; }
export declare class ProtocolError extends FlowbusError {}
export declare class ConnectionClosed extends FlowbusError {}
export declare class NodeError extends FlowbusError {}
export declare class RoutingError extends FlowbusError { errc: string; }
export declare class AgentUnavailable extends RoutingError {}
export declare class NoCapableAgent extends RoutingError {}
export declare class NoResponders extends RoutingError {}
export declare class Timeout extends RoutingError {}
export declare class MailboxFull extends RoutingError {}
export declare class InvalidTopic extends RoutingError {}
export declare class InvalidPattern extends RoutingError {}
export declare class InvalidAgent extends RoutingError {}
export declare class DuplicateAgent extends RoutingError {}
export declare class TooLarge extends RoutingError {}
export declare class NoBuffer extends RoutingError {}
export declare class NodeStopped extends RoutingError {}
export declare class NotSubscribed extends RoutingError {}
export declare class CircuitOpen extends RoutingError {}
export declare class TooManySubscriptions extends RoutingError {}
export declare class Unauthenticated extends RoutingError {}
export declare class NotPermitted extends RoutingError {}
export declare class RateLimited extends RoutingError {}
export declare class StoreFailed extends RoutingError {}
export declare function errorFor(code: number, reason?: string): FlowbusError;
export declare function validateTopic(topic: string): string | null;
export declare function validatePattern(pattern: string): string | null;
export declare function patternMatches(pattern: string, topic: string): boolean;
export declare function crc32c(bytes: Uint8Array): number;
