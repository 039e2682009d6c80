// One load generator process: `clients` closed-loop clients, each with its own keep-alive connection
// (undici Pool, one connection per client, no pipelining), each sending its next request as soon as
// the previous one is answered. Started by loadgen.ts with an IPC channel; runs one spec and exits.
// Bounded: no client starts a request after the window ends or past maxRequestsPerClient, every
// request has a timeout, and a watchdog ends the process if anything hangs regardless.

import { Pool } from 'undici';
import type { FromWorker, ToWorker, WorkerResult, WorkerSpec } from './loadgen-protocol.js';
import { monotonicMs } from './processes.js';
import { RequestShapes, type HttpShape, type Operation } from './requests.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
/** Largest answer body read and dropped without closing the connection (a 10 KB value's answer is
 * well under it). */
const DUMP_LIMIT_BYTES = 8 * 1024 * 1024;
const BACKOFF_AFTER_ERROR_MS = 10;
const BACKOFF_AFTER_ROTATE_MS = 5;
const ERROR_SAMPLES_MAX = 5;

/** Numbers in a typed array that doubles when full (a plain array of 10^6 numbers is heavy). */
class Samples {
  private values = new Float64Array(1 << 14);
  count = 0;

  add(value: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = value;
  }

  toArray(): Float64Array {
    return this.values.slice(0, this.count);
  }
}

/** xorshift32: cheap, seeded, good enough to pick keys uniformly. */
function nextRandom(state: number): number {
  let x = state;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

function describeErrorBody(status: number, text: string): string {
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown; error?: unknown };
    if (typeof parsed.code === 'string') return `${status} ${parsed.code}`;
    const message = typeof parsed.message === 'string' ? parsed.message : typeof parsed.error === 'string' ? parsed.error : '';
    return `${status} ${message.slice(0, 60)}`.trim();
  } catch {
    return `${status} ${text.slice(0, 60)}`.trim();
  }
}

async function run(spec: WorkerSpec): Promise<WorkerResult> {
  const shapes = new RequestShapes(spec.system, spec.valueBytes, spec.keyCount);
  const pools = spec.endpoints.map((port) => new Pool(`http://127.0.0.1:${port}`, {
    connections: spec.clients,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: spec.requestTimeoutMs,
    bodyTimeout: spec.requestTimeoutMs,
    connectTimeout: Math.min(2000, spec.requestTimeoutMs),
  }));
  // performance.now() is cheap; the offset makes it read the machine-wide monotonic clock.
  const clockOffsetMs = monotonicMs() - performance.now();
  const now = (): number => performance.now() + clockOffsetMs;
  const windowStartMs = spec.startAtMs + spec.warmupMs;
  const windowEndMs = windowStartMs + spec.durationMs;

  const latencies = new Samples();
  const acks = new Samples();
  const acksElsewhere = new Samples();
  const errors: Record<string, number> = {};
  const errorSamples: string[] = [];
  let okInWindow = 0;
  let okTotal = 0;
  let cpuAtWindowStart = process.cpuUsage();
  let cpuInWindow: NodeJS.CpuUsage | null = null;

  const send = async (pool: Pool, shape: HttpShape): Promise<string | null> => {
    try {
      const answer = await pool.request({
        method: shape.method, path: shape.path, body: shape.body, headers: shape.body === undefined ? undefined : JSON_HEADERS,
        headersTimeout: spec.requestTimeoutMs, bodyTimeout: spec.requestTimeoutMs,
      });
      if (answer.statusCode === 200) {
        await answer.body.dump({ limit: DUMP_LIMIT_BYTES });
        return null;
      }
      const text = await answer.body.text();
      if (errorSamples.length < ERROR_SAMPLES_MAX) errorSamples.push(`${shape.method} ${shape.path}: ${answer.statusCode} ${text.slice(0, 200)}`);
      return describeErrorBody(answer.statusCode, text);
    } catch (error) {
      const code = (error as { code?: string }).code ?? (error as Error).name;
      if (errorSamples.length < ERROR_SAMPLES_MAX) errorSamples.push(`${shape.method} ${shape.path}: ${(error as Error).message}`);
      return `network ${code}`;
    }
  };

  const client = async (local: number): Promise<void> => {
    const global = spec.clientOffset + local;
    let random = (Math.imul(spec.seed + 1, 2654435761) ^ Math.imul(global + 1, 40503)) >>> 0 || 1;
    let endpoint = 0;
    let fillKey = global;
    for (let sent = 0; sent < spec.maxRequestsPerClient; sent++) {
      if (now() >= windowEndMs) break;
      let operation: Operation;
      let key: number;
      if (spec.workload === 'fill') {
        if (fillKey >= spec.keyCount) break;
        key = fillKey;
        fillKey += spec.totalClients;
        operation = 'put';
      } else {
        random = nextRandom(random);
        key = random % spec.keyCount;
        switch (spec.workload) {
          case 'write': operation = 'put'; break;
          case 'read': operation = 'get'; break;
          case 'stale': operation = 'stale'; break;
          case 'mixed': operation = (random >>> 7) & 1 ? 'put' : 'get'; break;
        }
      }
      const startedMs = now();
      const failure = await send(pools[endpoint], shapes.shape(operation, key));
      const doneMs = now();
      if (failure === null) {
        okTotal++;
        if (doneMs >= windowStartMs && doneMs < windowEndMs) {
          okInWindow++;
          latencies.add(doneMs - startedMs);
        }
        if (spec.recordAcks) {
          acks.add(doneMs);
          if (endpoint !== 0) acksElsewhere.add(doneMs);
        }
        continue;
      }
      errors[failure] = (errors[failure] ?? 0) + 1;
      if (spec.rotateOnError) endpoint = (endpoint + 1) % pools.length;
      // A refused connection fails at once: never spin.
      await new Promise((resolve) => setTimeout(resolve, spec.rotateOnError ? BACKOFF_AFTER_ROTATE_MS : BACKOFF_AFTER_ERROR_MS));
    }
  };

  const waitMs = spec.startAtMs - now();
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  const cpuStartTimer = setTimeout(() => { cpuAtWindowStart = process.cpuUsage(); }, Math.max(0, windowStartMs - now()));
  const cpuEndTimer = setTimeout(() => { cpuInWindow = process.cpuUsage(cpuAtWindowStart); }, Math.max(0, windowEndMs - now()));
  await Promise.all(Array.from({ length: spec.clients }, (_, local) => client(local)));
  clearTimeout(cpuStartTimer);
  clearTimeout(cpuEndTimer);
  // A fill ends before its window does: its CPU is what it used up to now.
  const cpu: NodeJS.CpuUsage = cpuInWindow ?? process.cpuUsage(cpuAtWindowStart);
  await Promise.all(pools.map((pool) => pool.destroy().catch(() => {})));
  const windowMs = spec.workload === 'fill' ? Math.min(spec.durationMs, now() - windowStartMs) : spec.durationMs;
  return {
    okInWindow, latenciesMs: latencies.toArray(), okTotal, errors, errorSamples, acksMs: acks.toArray(), acksElsewhereMs: acksElsewhere.toArray(),
    cpuMsInWindow: (cpu.user + cpu.system) / 1000, windowMs,
  };
}

function reply(message: FromWorker): void {
  if (process.send === undefined) {
    process.exit(2);
  }
  process.send(message, undefined, {}, () => process.exit(0));
}

process.on('disconnect', () => process.exit(2));
process.once('message', (message: ToWorker) => {
  const { spec } = message;
  // Whatever happens, this process ends: the window, the slowest request, and a margin.
  const watchdogMs = Math.max(0, spec.startAtMs - monotonicMs()) + spec.warmupMs + spec.durationMs + spec.requestTimeoutMs + 15_000;
  setTimeout(() => {
    process.stderr.write(`loadgen worker: watchdog fired after ${watchdogMs} ms\n`);
    process.exit(3);
  }, watchdogMs).unref();
  run(spec).then(
    (result) => reply({ type: 'result', result }),
    (error: Error) => reply({ type: 'failed', message: error.stack ?? error.message }),
  );
});
