// Continuous client load while the cluster changes, recorded as a history for the linearizability
// checker (test/lincheck). Each worker is a KvClient over every HTTP port the test may ever use (a
// port with nothing behind it just makes the client move on), with exactly-once stamps, so a write
// retried after a failover is applied once. Counts are kept per phase (one per membership change),
// so a test can report how many client requests failed during each change.

import { performance } from 'node:perf_hooks';
import { KvClient, KvError } from '../../../src/client/kv-client.js';
import { checkLinearizable, type CheckResult, type KvOperation } from '../../lincheck/index.js';

export interface WorkloadOptions {
  readonly ports: readonly number[];
  readonly clients?: number;
  readonly keys?: number;
  /** Pause between one worker's operations (keeps the history small enough to check quickly). */
  readonly thinkMs?: number;
  readonly timeoutMs?: number;
}

export interface PhaseCounts {
  readonly name: string;
  readonly durationMs: number;
  readonly ok: number;
  /** Definitely not applied (reads that failed; writes refused with a 4xx). */
  readonly failed: number;
  /** Writes whose outcome the client never learned (counted as failed requests too). */
  readonly unknown: number;
  readonly latencyMsMax: number;
  readonly errors: Readonly<Record<string, number>>;
}

interface Phase {
  readonly name: string;
  readonly startMs: number;
  endMs: number | null;
}

interface Completion {
  readonly atMs: number;
  readonly latencyMs: number;
  readonly status: 'ok' | 'fail' | 'unknown';
  readonly error: string | null;
}

export class Workload {
  readonly history: KvOperation[] = [];
  private readonly completions: Completion[] = [];
  private readonly phases: Phase[] = [];
  private nextId = 1;
  private running = false;
  private readonly workers: Promise<void>[] = [];
  private readonly clients: KvClient[] = [];
  private readonly keys: string[];

  constructor(private readonly options: WorkloadOptions) {
    this.keys = Array.from({ length: options.keys ?? 24 }, (_, i) => `k${i}`);
  }

  start(): void {
    this.running = true;
    const count = this.options.clients ?? 4;
    for (let c = 0; c < count; c++) {
      // Each worker starts at a different endpoint, so the load reaches leader and followers alike.
      const ports = this.options.ports.map((_, i) => this.options.ports[(i + c) % this.options.ports.length]);
      const client = new KvClient({ endpoints: ports.map((port) => `127.0.0.1:${port}`), timeoutMs: this.options.timeoutMs ?? 10_000, maxSockets: 4 });
      this.clients.push(client);
      this.workers.push(this.work(c, client));
    }
  }

  /** Mark the start of a named phase (ending the previous one). */
  phase(name: string): void {
    const now = performance.now();
    const last = this.phases[this.phases.length - 1];
    if (last !== undefined && last.endMs === null) last.endMs = now;
    this.phases.push({ name, startMs: now, endMs: null });
  }

  async stop(): Promise<void> {
    const last = this.phases[this.phases.length - 1];
    if (last !== undefined && last.endMs === null) last.endMs = performance.now();
    this.running = false;
    await Promise.all(this.workers);
  }

  /** Linearizable reads of every key after the load stopped: they pin down the final state, so a
   * lost acknowledged write shows up as a violation. */
  async finalReads(ports: readonly number[]): Promise<Map<string, string | null>> {
    const client = new KvClient({ endpoints: ports.map((port) => `127.0.0.1:${port}`), timeoutMs: 20_000 });
    const values = new Map<string, string | null>();
    try {
      for (const key of this.keys) {
        const invokeTime = performance.now();
        const answer = await client.get(key);
        const output = answer === null ? null : answer.value;
        values.set(key, output);
        this.history.push({ id: this.nextId++, clientId: 1000, key, kind: 'get', output, invokeTime, completeTime: performance.now(), status: 'ok' });
      }
    } finally {
      client.close();
    }
    return values;
  }

  check(): CheckResult {
    return checkLinearizable(this.history, { timeBudgetMs: 120_000 });
  }

  /** Counts per phase: requests that completed within each phase's window. */
  report(): PhaseCounts[] {
    return this.phases.map((phase) => {
      const end = phase.endMs ?? performance.now();
      const inside = this.completions.filter((c) => c.atMs >= phase.startMs && c.atMs < end);
      const errors: Record<string, number> = {};
      for (const c of inside) if (c.error !== null) errors[c.error] = (errors[c.error] ?? 0) + 1;
      return {
        name: phase.name,
        durationMs: Math.round(end - phase.startMs),
        ok: inside.filter((c) => c.status === 'ok').length,
        failed: inside.filter((c) => c.status === 'fail').length,
        unknown: inside.filter((c) => c.status === 'unknown').length,
        latencyMsMax: Math.round(Math.max(0, ...inside.map((c) => c.latencyMs))),
        errors,
      };
    });
  }

  /** Acknowledged writes (puts and deletes that returned a result). */
  acknowledgedWrites(): number {
    return this.history.filter((op) => op.status === 'ok' && op.kind !== 'get').length;
  }

  /** Stop at once (a failed test): the workers end, the connections close. */
  close(): void {
    this.running = false;
    for (const client of this.clients) client.close();
  }

  private async work(worker: number, client: KvClient): Promise<void> {
    let seq = 0;
    while (this.running) {
      const key = this.keys[Math.floor(Math.random() * this.keys.length)];
      const dice = Math.random();
      const invokeTime = performance.now();
      const id = this.nextId++;
      if (dice < 0.5) {
        const value = `w${worker}-${++seq}`;
        await this.record(invokeTime, true, async () => {
          await client.put(key, value);
          return { id, clientId: worker, key, kind: 'put', value, invokeTime, completeTime: performance.now(), status: 'ok' };
        }, (status) => ({ id, clientId: worker, key, kind: 'put', value, invokeTime, completeTime: null, status }));
      } else if (dice < 0.6) {
        await this.record(invokeTime, true, async () => {
          const deleted = await client.delete(key);
          return { id, clientId: worker, key, kind: 'delete', deleted, invokeTime, completeTime: performance.now(), status: 'ok' };
        }, (status) => ({ id, clientId: worker, key, kind: 'delete', invokeTime, completeTime: null, status }));
      } else {
        await this.record(invokeTime, false, async () => {
          const answer = await client.get(key);
          return { id, clientId: worker, key, kind: 'get', output: answer === null ? null : answer.value, invokeTime, completeTime: performance.now(), status: 'ok' };
        }, (status) => ({ id, clientId: worker, key, kind: 'get', invokeTime, completeTime: null, status }));
      }
      const thinkMs = this.options.thinkMs ?? 2;
      if (thinkMs > 0) await new Promise((resolve) => setTimeout(resolve, thinkMs));
    }
  }

  /**
   * A write that failed in any way may still have been applied (an earlier attempt inside the
   * client may have been proposed), so it is 'unknown' unless the store refused it with a 4xx. A read
   * that failed changed nothing.
   */
  private async record(invokeTime: number, isWrite: boolean, run: () => Promise<KvOperation>, failed: (status: 'fail' | 'unknown') => KvOperation): Promise<void> {
    try {
      const op = await run();
      this.history.push(op);
      this.completions.push({ atMs: performance.now(), latencyMs: performance.now() - invokeTime, status: 'ok', error: null });
    } catch (error) {
      const code = error instanceof KvError ? error.code : 'EXCEPTION';
      const definite = !isWrite || (error instanceof KvError && error.status >= 400 && error.status < 500);
      const status = definite ? 'fail' : 'unknown';
      this.history.push(failed(status));
      this.completions.push({ atMs: performance.now(), latencyMs: performance.now() - invokeTime, status, error: code });
    }
  }
}

/** One line per phase, for the test log. */
export function formatReport(counts: readonly PhaseCounts[]): string[] {
  return counts.map((c) => `${c.name}: ${c.durationMs} ms, ${c.ok} ok, ${c.failed + c.unknown} failed (${c.unknown} with unknown outcome), max latency ${c.latencyMsMax} ms${Object.keys(c.errors).length > 0 ? `, errors ${JSON.stringify(c.errors)}` : ''}`);
}
