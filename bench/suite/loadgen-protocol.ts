// What the coordinator asks of a load generator process, and what it answers (over the IPC channel,
// with structured clone, so sample arrays travel as typed arrays).

import type { SystemKind } from './requests.js';

/** write: 100% puts; read: 100% linearizable gets; stale: 100% stale gets; mixed: 50/50 puts and
 * linearizable gets; fill: every key written once, in order, to preload the key space. */
export type Workload = 'write' | 'read' | 'stale' | 'mixed' | 'fill';

export interface WorkerSpec {
  readonly system: SystemKind;
  /** API ports on 127.0.0.1; clients start on endpoints[0] (the leader). */
  readonly endpoints: readonly number[];
  readonly workload: Workload;
  readonly valueBytes: number;
  readonly keyCount: number;
  /** Closed-loop clients in this process, each with its own keep-alive connection. */
  readonly clients: number;
  /** This process's first client's number among all processes' clients (for fill and seeds). */
  readonly clientOffset: number;
  readonly totalClients: number;
  /** Shared monotonic clock (CLOCK_MONOTONIC, ms) at which every process starts together. */
  readonly startAtMs: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly requestTimeoutMs: number;
  /** Upper bound on requests per client, whatever the time. */
  readonly maxRequestsPerClient: number;
  /** Record the time of every acknowledged request (failover). */
  readonly recordAcks: boolean;
  /** On an error, move this client to the next endpoint (failover: the old leader is gone). */
  readonly rotateOnError: boolean;
  readonly seed: number;
}

export interface WorkerResult {
  /** Successful requests that completed inside the measurement window. */
  readonly okInWindow: number;
  /** Latency in ms of each of them. */
  readonly latenciesMs: Float64Array;
  readonly okTotal: number;
  /** Error counts by kind ("503 NO_LEADER", "network UND_ERR_SOCKET", ...). */
  readonly errors: Record<string, number>;
  readonly errorSamples: readonly string[];
  /** Shared-monotonic ms of every success (when recordAcks). */
  readonly acksMs: Float64Array;
  /** The same, of the successes answered by an endpoint other than endpoints[0]. */
  readonly acksElsewhereMs: Float64Array;
  /** CPU time (user + system) this process used inside the window, ms. */
  readonly cpuMsInWindow: number;
  readonly windowMs: number;
}

export type ToWorker = { readonly type: 'run'; readonly spec: WorkerSpec };
export type FromWorker = { readonly type: 'result'; readonly result: WorkerResult } | { readonly type: 'failed'; readonly message: string };
