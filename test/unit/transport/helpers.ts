// Shared pieces of the transport tests: a logger that records, waiting on conditions with deadlines,
// message factories, transports wired to each other through an address book, a raw framed socket
// for speaking the protocol by hand (or breaking it), and a TCP proxy that can go silent.

import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../../../src/common/logger.js';
import { decodeValue, encodeValue } from '../../../src/codec/raft-codec.js';
import type { HeartbeatRequest, Message, NodeId, SnapshotRequest } from '../../../src/raft/types.js';
import { encodeFrame, FrameDecoder, FrameType } from '../../../src/transport/frame.js';
import { helloFor, type Purpose } from '../../../src/transport/handshake.js';
import { PeerTransport, type PeerTransportOptions } from '../../../src/transport/peer-transport.js';

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A logger that keeps every line (with bound fields merged in) for assertions. */
export function recordingLogger(lines: LogLine[] = [], bound: Record<string, unknown> = {}): Logger & { readonly lines: LogLine[] } {
  const write = (level: LogLine['level']) => (msg: string, fields?: Record<string, unknown>): void => {
    lines.push({ level, msg, fields: { ...bound, ...fields } });
  };
  return {
    lines,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (fields) => recordingLogger(lines, { ...bound, ...fields }),
  };
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. Returns the waited ms. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return performance.now() - started;
}

/** Rejects after `timeoutMs` unless `promise` settles first; the timer never outlives the race. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function heartbeat(from: NodeId, to: NodeId, context: number): HeartbeatRequest {
  return { type: 'heartbeatRequest', from, to, term: 1, commitIndex: 0, context };
}

export function snapshotRequest(from: NodeId, to: NodeId, index = 100): SnapshotRequest {
  return { type: 'snapshotRequest', from, to, term: 2, snapshot: { index, term: 2, membership: { members: [] } } };
}

/** Collects delivered messages; tests wait on counts or on a predicate. */
export class Inbox {
  readonly messages: Message[] = [];
  readonly push = (message: Message): void => {
    this.messages.push(message);
  };
  contexts(from?: NodeId): number[] {
    return this.messages.filter((m) => from === undefined || m.from === from).map((m) => (m as { context?: number }).context ?? -1);
  }
  has(predicate: (message: Message) => boolean): boolean {
    return this.messages.some(predicate);
  }
}

export const CLUSTER = 'test-cluster';

/** Transports that find each other through one address book (the membership, in production). */
export class Cluster {
  readonly addresses = new Map<NodeId, string>();
  readonly transports = new Map<NodeId, PeerTransport>();
  readonly inboxes = new Map<NodeId, Inbox>();
  readonly logs: LogLine[] = [];

  async start(id: NodeId, overrides: Partial<PeerTransportOptions> = {}): Promise<PeerTransport> {
    const inbox = this.inboxes.get(id) ?? new Inbox();
    this.inboxes.set(id, inbox);
    const previous = this.addresses.get(id);
    const transport = new PeerTransport({
      selfId: id,
      clusterId: CLUSTER,
      listenHost: '127.0.0.1',
      listenPort: previous === undefined ? 0 : Number(previous.split(':')[1]),
      peerAddress: (peer) => this.addresses.get(peer),
      onMessage: inbox.push,
      onSnapshot: async (_request, chunks) => {
        for await (const chunk of chunks) void chunk;
      },
      logger: recordingLogger(this.logs, { node: id }),
      ...overrides,
    });
    const { port } = await transport.start();
    this.transports.set(id, transport);
    if (previous === undefined) this.addresses.set(id, `127.0.0.1:${port}`);
    return transport;
  }

  transport(id: NodeId): PeerTransport {
    const transport = this.transports.get(id);
    if (transport === undefined) throw new Error(`no transport ${id}`);
    return transport;
  }

  inbox(id: NodeId): Inbox {
    const inbox = this.inboxes.get(id);
    if (inbox === undefined) throw new Error(`no inbox ${id}`);
    return inbox;
  }

  port(id: NodeId): number {
    return Number(this.addresses.get(id)?.split(':')[1]);
  }

  warnings(node?: NodeId): LogLine[] {
    return this.logs.filter((line) => line.level === 'warn' && (node === undefined || line.fields.node === node));
  }

  errors(): LogLine[] {
    return this.logs.filter((line) => line.level === 'error');
  }

  /** Sends heartbeats from `from` to `to` every 10 ms until one arrives; proves the link works. */
  async roundTrip(from: NodeId, to: NodeId, timeoutMs = 5000): Promise<void> {
    const context = Math.floor(Math.random() * 1e9);
    const arrived = (): boolean => this.inbox(to).has((m) => m.from === from && (m as { context?: number }).context === context);
    const sender = setInterval(() => this.transport(from).send([heartbeat(from, to, context)]), 10);
    try {
      this.transport(from).send([heartbeat(from, to, context)]);
      await waitFor(arrived, timeoutMs, `a message from ${from} to ${to}`);
    } finally {
      clearInterval(sender);
    }
  }

  async stop(id: NodeId): Promise<void> {
    await this.transports.get(id)?.stop();
    this.transports.delete(id);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.transports.values()].map((transport) => transport.stop()));
    this.transports.clear();
  }
}

/** A socket that speaks (or breaks) the frame protocol by hand. */
export class RawPeer {
  readonly frames: Array<{ type: number; payload: Buffer }> = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder();
  private isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let frame = this.decoder.next(); frame !== null; frame = this.decoder.next()) this.frames.push({ type: frame.type, payload: Buffer.from(frame.payload) });
    });
    socket.on('error', () => {});
    this.closed = once(socket, 'close').then(() => {
      this.isClosed = true;
    });
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawPeer(socket);
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  hello(from: NodeId | 'client', purpose: Purpose = 'raft', clusterId = CLUSTER): void {
    this.sendValue(FrameType.hello, helloFor(clusterId, from, purpose));
  }

  sendValue(type: number, value: unknown): void {
    this.socket.write(encodeFrame(type, encodeValue(value)));
  }

  /** The first decoded handshake reply, waited for with a deadline. */
  async reply(timeoutMs = 2000): Promise<Record<string, unknown>> {
    await waitFor(() => this.frames.some((f) => f.type === FrameType.helloReply) || !this.isOpen, timeoutMs, 'a handshake reply');
    const frame = this.frames.find((f) => f.type === FrameType.helloReply);
    if (frame === undefined) throw new Error('closed without a handshake reply');
    return decodeValue(frame.payload) as Record<string, unknown>;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * A TCP proxy that forwards both ways until told to stall: then it stops reading either side but
 * closes nothing, like a network cut that sends no reset. `resume` forwards again.
 */
export class StallableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private stalled = false;

  async listen(targetPort: number): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: targetPort });
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        this.sockets.add(from);
        from.on('data', (chunk: Buffer) => to.write(chunk));
        from.on('error', () => {});
        from.on('close', () => {
          this.sockets.delete(from);
          to.destroy();
        });
        if (this.stalled) from.pause();
      }
    });
    this.server = server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no port');
    return address.port;
  }

  stall(): void {
    this.stalled = true;
    for (const socket of this.sockets) socket.pause();
  }

  resume(): void {
    this.stalled = false;
    for (const socket of this.sockets) socket.resume();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A port nobody listens on (bound, read, released). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
