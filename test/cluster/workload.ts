// Concurrent clients against the real cluster, and the record of everything they saw. Every
// operation goes into one history with invoke and complete times from one monotonic clock
// (performance.now()); every written value is unique; every outcome is classified:
//   ok       an answer that says what happened (200, or 404 KEY_NOT_FOUND for a delete or a get);
//   fail     definitely not applied: refused before sending, or an answer the contract says was not
//            proposed (400, 404 NOT_FOUND, 405, 409, 413, 429, 503, 507);
//   unknown  504 OUTCOME_UNKNOWN, 500, a timeout or a connection lost after sending.
// A write that ended unknown is retried with the same X-Client-Id / X-Client-Seq (at most twice);
// the attempts are one operation whose outcome is the final answer. The history goes to the
// linearizability checker in test/lincheck as it is.

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkLinearizable, type CheckResult } from '../lincheck/check.js';
import type { KvOperation, OpStatus } from '../lincheck/history.js';
import { formatOperation } from '../lincheck/format.js';
import { errorCode, exchange, now, type Endpoint, type Exchange } from './http-probe.js';

/** Answers that the contract says leave nothing applied. */
const DEFINITELY_NOT_APPLIED = new Set([400, 404, 405, 409, 413, 415, 429, 503, 507]);

export interface Attempt {
  /** Which API answered (node2, gateway...). */
  readonly endpoint: string;
  /** "200", "504 OUTCOME_UNKNOWN", "lost: socket hang up", "not-sent: connect ECONNREFUSED ..." */
  readonly outcome: string;
}

export interface OpDetail {
  readonly attempts: Attempt[];
}

function formatAttempt(attempt: Attempt): string {
  return `${attempt.endpoint} ${attempt.outcome}`;
}

export class History {
  readonly ops: KvOperation[] = [];
  readonly details = new Map<number, OpDetail>();
  /** Acknowledged puts to keys written once only: each must be readable at the end. */
  readonly ackedUnique = new Map<string, string>();
  /** Outcome labels ("503 NO_LEADER", "lost", "not-sent"): how often they were seen, and the slowest. */
  readonly outcomes = new Map<string, { count: number; maxMs: number }>();
  private nextId = 1;
  private readonly listeners = new Set<(op: KvOperation) => void>();
  readonly startedAt = now();

  newId(): number {
    return this.nextId++;
  }

  record(op: KvOperation, detail: OpDetail): void {
    this.ops.push(op);
    this.details.set(op.id, detail);
    for (const listener of [...this.listeners]) listener(op);
  }

  count(label: string, latencyMs: number): void {
    const entry = this.outcomes.get(label) ?? { count: 0, maxMs: 0 };
    entry.count += 1;
    entry.maxMs = Math.max(entry.maxMs, latencyMs);
    this.outcomes.set(label, entry);
  }

  onRecord(listener: (op: KvOperation) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Acknowledged writes (puts and deletes) completed after `since`. */
  ackedWritesSince(since: number, filter: (op: KvOperation) => boolean = () => true): number {
    let count = 0;
    for (const op of this.ops) if (op.kind !== 'get' && op.status === 'ok' && op.completeTime !== null && op.completeTime > since && filter(op)) count++;
    return count;
  }

  /** Resolves once `count` writes were acknowledged after `since`; rejects at the deadline. */
  waitForAckedWrites(count: number, since: number, timeoutMs: number, what = `${count} acknowledged writes`): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.ackedWritesSince(since) < count) return false;
        cleanup();
        resolve(now());
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (got ${this.ackedWritesSince(since)}; outcomes: ${this.describeOutcomes()})`));
      }, timeoutMs);
      const off = this.onRecord(() => { check(); });
      const cleanup = (): void => { clearTimeout(timer); off(); };
      check();
    });
  }

  /** Resolves once `count` operations of any outcome completed after `since` (a logical clock for fault schedules). */
  waitForOperations(count: number, since: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      let seen = 0;
      const timer = setTimeout(() => { off(); resolve(); }, timeoutMs);
      const off = this.onRecord((op) => {
        if (op.invokeTime >= since && ++seen >= count) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  }

  describeOutcomes(): string {
    return [...this.outcomes.entries()].sort((a, b) => b[1].count - a[1].count)
      .map(([label, { count, maxMs }]) => `${label}: ${count} (slowest ${Math.round(maxMs)}ms)`).join(', ') || 'none';
  }

  tally(): { ops: number; ok: number; fail: number; unknown: number } {
    let ok = 0;
    let fail = 0;
    let unknown = 0;
    for (const op of this.ops) {
      if (op.status === 'ok') ok++;
      else if (op.status === 'fail') fail++;
      else unknown++;
    }
    return { ops: this.ops.length, ok, fail, unknown };
  }

  /** The longest time between consecutive acknowledged writes inside [from, to], as the clients saw it. */
  longestAckGap(from: number, to: number): { gapMs: number; atMs: number } {
    const times = this.ops
      .filter((op) => op.kind !== 'get' && op.status === 'ok' && op.completeTime !== null && op.completeTime >= from && op.completeTime <= to)
      .map((op) => op.completeTime as number)
      .sort((a, b) => a - b);
    let previous = from;
    let gapMs = 0;
    let atMs = 0;
    for (const t of [...times, to]) {
      if (t - previous > gapMs) {
        gapMs = t - previous;
        atMs = previous - this.startedAt;
      }
      previous = t;
    }
    return { gapMs, atMs };
  }

  /** What the clients were doing during a stretch of time: operations that completed in it, by outcome. */
  activity(from: number, to: number): string {
    const counts = new Map<string, number>();
    for (const op of this.ops) {
      const end = op.completeTime ?? op.invokeTime;
      if (op.invokeTime > to || end < from) continue;
      const last = this.details.get(op.id)?.attempts.at(-1);
      const label = `${op.kind} ${op.status} via ${last ? `${last.endpoint} ${last.outcome.replace(/: .*/, '')}` : '?'}`;
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([label, n]) => `${n}x ${label}`).join(', ');
  }

  explain(ops: readonly KvOperation[]): string {
    return ops.map((op) => `    ${formatOperation(op)}  <- ${this.details.get(op.id)?.attempts.map(formatAttempt).join(' | ') ?? '?'}`).join('\n');
  }
}

// ---- single operations -------------------------------------------------------------------------

export interface Stamp {
  readonly clientId: string;
  readonly seq: number;
}

function describe(endpoint: Endpoint, result: Exchange): Attempt {
  if (result.kind === 'answer') return { endpoint: endpoint.name, outcome: `${result.status}${errorCode(result.body) ? ` ${errorCode(result.body)}` : ''}` };
  return { endpoint: endpoint.name, outcome: `${result.kind}: ${result.error}` };
}

function outcomeLabel(result: Exchange): string {
  if (result.kind === 'answer') return `${result.status}${errorCode(result.body) ? ` ${errorCode(result.body)}` : ''}`;
  return result.kind;
}

type AttemptOutcome = { status: 'ok'; body: unknown } | { status: 'fail' } | { status: 'unknown' };

function classifyWrite(result: Exchange, kind: 'put' | 'delete'): AttemptOutcome {
  if (result.kind === 'not-sent') return { status: 'fail' };
  if (result.kind === 'lost') return { status: 'unknown' };
  if (result.status === 200) return { status: 'ok', body: result.body };
  const code = errorCode(result.body);
  if (kind === 'delete' && result.status === 404 && code === 'KEY_NOT_FOUND') return { status: 'ok', body: { deleted: false } };
  if (DEFINITELY_NOT_APPLIED.has(result.status) && code !== undefined) return { status: 'fail' };
  return { status: 'unknown' };
}

export interface WriteOptions {
  readonly history: History;
  readonly clientId: number;
  /** Chooses the endpoint for each attempt (a retry may go elsewhere). */
  readonly endpoint: (attempt: number) => Endpoint;
  readonly stamp?: Stamp;
  readonly timeoutMs: number;
  /** Attempts in all (retries only with a stamp, and only after an unknown outcome). */
  readonly maxAttempts?: number;
  /** Called when the first attempt's request has been handed to the kernel. */
  readonly onSent?: () => void;
}

/** A put or delete, retried under its stamp after an unknown outcome; recorded as one operation. */
export async function write(kind: 'put' | 'delete', key: string, value: string | undefined, options: WriteOptions): Promise<KvOperation> {
  const { history } = options;
  const id = history.newId();
  const invokeTime = now();
  const attempts: Attempt[] = [];
  const headers: Record<string, string> = {};
  if (options.stamp) {
    headers['x-client-id'] = options.stamp.clientId;
    headers['x-client-seq'] = String(options.stamp.seq);
    headers['x-client-acked-seq'] = String(options.stamp.seq - 1);
  }
  const maxAttempts = options.stamp ? (options.maxAttempts ?? 3) : 1;
  let status: OpStatus = 'fail';
  let body: unknown;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const endpoint = options.endpoint(attempt);
    const attemptStarted = now();
    const result = await exchange(endpoint, kind === 'put' ? 'PUT' : 'DELETE', `/kv/${encodeURIComponent(key)}`, {
      headers, body: kind === 'put' ? JSON.stringify({ value }) : undefined, timeoutMs: options.timeoutMs,
      ...(attempt === 0 && options.onSent ? { onSent: options.onSent } : {}),
    });
    attempts.push(describe(endpoint, result));
    history.count(`${kind} ${outcomeLabel(result)}`, now() - attemptStarted);
    const outcome = classifyWrite(result, kind);
    if (outcome.status === 'ok') {
      status = 'ok';
      body = outcome.body;
      break;
    }
    if (outcome.status === 'unknown') status = 'unknown';
    // A definite refusal of the first attempt ends the operation; after an unknown one, only an
    // answer with a result can settle it, so keep asking under the same stamp.
    if (status === 'fail') break;
    if (attempt + 1 < maxAttempts) await sleep(50);
  }
  const completeTime = now();
  const op: KvOperation = kind === 'put'
    ? { id, clientId: options.clientId, key, kind, value, invokeTime, completeTime: status === 'unknown' ? null : completeTime, status }
    : { id, clientId: options.clientId, key, kind, ...(status === 'ok' ? { deleted: (body as { deleted?: boolean }).deleted !== false } : {}), invokeTime, completeTime: status === 'unknown' ? null : completeTime, status };
  history.record(op, { attempts });
  return op;
}

/** A linearizable GET (the default), recorded. Anything but a definite answer is 'fail' (no output to check). */
export async function read(key: string, options: { history: History; clientId: number; endpoint: Endpoint; timeoutMs: number; onSent?: () => void }): Promise<KvOperation> {
  const { history } = options;
  const id = history.newId();
  const invokeTime = now();
  const result = await exchange(options.endpoint, 'GET', `/kv/${encodeURIComponent(key)}`, { timeoutMs: options.timeoutMs, ...(options.onSent ? { onSent: options.onSent } : {}) });
  const completeTime = now();
  history.count(`get ${outcomeLabel(result)}`, completeTime - invokeTime);
  let op: KvOperation;
  if (result.kind === 'answer' && result.status === 200 && typeof (result.body as { value?: unknown }).value === 'string') {
    op = { id, clientId: options.clientId, key, kind: 'get', output: (result.body as { value: string }).value, invokeTime, completeTime, status: 'ok' };
  } else if (result.kind === 'answer' && result.status === 404 && errorCode(result.body) === 'KEY_NOT_FOUND') {
    op = { id, clientId: options.clientId, key, kind: 'get', output: null, invokeTime, completeTime, status: 'ok' };
  } else {
    op = { id, clientId: options.clientId, key, kind: 'get', invokeTime, completeTime, status: 'fail' };
  }
  history.record(op, { attempts: [describe(options.endpoint, result)] });
  return op;
}

// ---- the workload ------------------------------------------------------------------------------

/** A small seeded generator, so a fault schedule can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  readonly history: History;
  readonly label: string;
  /** Where clients send requests; asked before every operation. */
  readonly endpoints: () => readonly Endpoint[];
  readonly clients?: number;
  readonly hotKeys?: number;
  /** Shares of the operation mix; the rest are puts to hot keys. */
  readonly readShare?: number;
  readonly deleteShare?: number;
  readonly uniqueShare?: number;
  readonly timeoutMs?: number;
  /** Pause after each operation: keeps two cores from saturating (which would cause elections). */
  readonly thinkMs?: number;
  readonly valueBytes?: number;
  readonly seed?: number;
}

export class Workload {
  readonly hotKeys: string[];
  private stopping = false;
  private running: Promise<void>[] = [];
  readonly runId = randomBytes(4).toString('hex');
  startedAt = 0;
  /** When stop() was called: the end of the window in which the workload kept the cluster busy. */
  stoppedAt = 0;
  private uniqueCounter = 0;

  constructor(readonly options: WorkloadOptions) {
    this.hotKeys = Array.from({ length: options.hotKeys ?? 4 }, (_, i) => `${options.label}/hot-${i}`);
  }

  start(): void {
    this.startedAt = now();
    const random = seededRandom(this.options.seed ?? Date.now());
    for (let client = 1; client <= (this.options.clients ?? 12); client++) {
      this.running.push(this.client(client, seededRandom(Math.floor(random() * 2 ** 32))));
    }
  }

  /** Stops issuing operations and waits for those in flight to finish. */
  /** Stops issuing operations without waiting (after a failure). */
  halt(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stoppedAt = now();
    await Promise.all(this.running);
  }

  private async client(client: number, random: () => number): Promise<void> {
    const { history } = this.options;
    const stampId = `faults-${this.options.label}-${this.runId}-c${client}`;
    const timeoutMs = this.options.timeoutMs ?? 7000;
    const padding = 'x'.repeat(Math.max(0, (this.options.valueBytes ?? 0)));
    let seq = 0;
    let n = 0;
    while (!this.stopping) {
      const endpoints = this.options.endpoints();
      const pick = (): Endpoint => endpoints[Math.floor(random() * endpoints.length)];
      const roll = random();
      const readShare = this.options.readShare ?? 0.3;
      const deleteShare = this.options.deleteShare ?? 0.08;
      const uniqueShare = this.options.uniqueShare ?? 0.15;
      const hotKey = this.hotKeys[Math.floor(random() * this.hotKeys.length)];
      let op: KvOperation;
      n++;
      if (roll < readShare) {
        op = await read(hotKey, { history, clientId: client, endpoint: pick(), timeoutMs });
      } else if (roll < readShare + deleteShare) {
        op = await write('delete', hotKey, undefined, { history, clientId: client, endpoint: pick, stamp: { clientId: stampId, seq: ++seq }, timeoutMs });
      } else if (roll < readShare + deleteShare + uniqueShare) {
        const key = `${this.options.label}/u-${client}-${++this.uniqueCounter}`;
        const value = `${this.runId}-c${client}-${n}${padding}`;
        op = await write('put', key, value, { history, clientId: client, endpoint: pick, stamp: { clientId: stampId, seq: ++seq }, timeoutMs });
        if (op.status === 'ok') history.ackedUnique.set(key, value);
      } else {
        op = await write('put', hotKey, `${this.runId}-c${client}-${n}`, { history, clientId: client, endpoint: pick, stamp: { clientId: stampId, seq: ++seq }, timeoutMs });
      }
      // Refusals come back at once; a short pause keeps a client from spinning on a dead node.
      await sleep(op.status === 'ok' ? (this.options.thinkMs ?? 10) : 30 + random() * 70);
    }
  }
}

// ---- verdicts ----------------------------------------------------------------------------------

export interface Verdict {
  readonly result: CheckResult;
  readonly text: string;
}

export function check(history: History): Verdict {
  const started = now();
  const result = checkLinearizable(history.ops, { timeBudgetMs: 90_000 });
  const took = Math.round(now() - started);
  switch (result.verdict) {
    case 'linearizable': return { result, text: `linearizable (${result.keysChecked} keys, ${result.operationsChecked} ops, ${took} ms)` };
    case 'unknown': return { result, text: `UNKNOWN: ${result.reason}` };
    case 'violation': return { result, text: `VIOLATION on key ${result.key}:\n${result.explanation}\n  operations with their attempts:\n${history.explain(result.operations)}` };
  }
}
