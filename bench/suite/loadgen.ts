// The coordinator side of the load generator: splits the clients over `processes` worker processes,
// starts them together on the shared monotonic clock, and merges what they measured.

import type { FromWorker, ToWorker, WorkerResult, WorkerSpec, Workload } from './loadgen-protocol.js';
import { distPath } from './paths.js';
import { keepTail, monotonicMs, readProcessCpuMs, spawnTracked, stopChild } from './processes.js';
import type { SystemKind } from './requests.js';
import { concatSamples, summarize, type LatencySummary } from './stats.js';

/** Time for the workers to start and load undici before the common start. */
const START_DELAY_MS = 400;
export const REQUEST_TIMEOUT_MS = 5000;

export interface LoadSpec {
  readonly system: SystemKind;
  readonly endpoints: readonly number[];
  readonly workload: Workload;
  readonly valueBytes: number;
  readonly keyCount: number;
  readonly clients: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly processes: number;
  readonly recordAcks?: boolean;
  readonly rotateOnError?: boolean;
  readonly seed?: number;
  /** Per-request timeout (default REQUEST_TIMEOUT_MS); a timed-out request counts as an error. */
  readonly requestTimeoutMs?: number;
  /** Called once the common start time is known (failover schedules its kill from it). */
  readonly onStart?: (startAtMs: number) => void;
}

export interface LoadResult {
  readonly ok: number;
  readonly opsPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly errors: Record<string, number>;
  readonly errorCount: number;
  readonly errorSamples: readonly string[];
  /** CPU the load generator processes used inside the window, in cores (1 = one core busy). */
  readonly loadgenCpuCores: number;
  readonly windowMs: number;
  readonly acksMs: Float64Array;
  /** Acknowledgements from endpoints other than endpoints[0]. */
  readonly acksElsewhereMs: Float64Array;
  readonly startAtMs: number;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const processes = Math.max(1, Math.min(spec.processes, spec.clients));
  const startAtMs = monotonicMs() + START_DELAY_MS;
  spec.onStart?.(startAtMs);
  const runs: Promise<WorkerResult>[] = [];
  let offset = 0;
  for (let p = 0; p < processes; p++) {
    const clients = Math.floor(spec.clients / processes) + (p < spec.clients % processes ? 1 : 0);
    const workerSpec: WorkerSpec = {
      system: spec.system, endpoints: spec.endpoints, workload: spec.workload, valueBytes: spec.valueBytes, keyCount: spec.keyCount,
      clients, clientOffset: offset, totalClients: spec.clients, startAtMs, warmupMs: spec.warmupMs, durationMs: spec.durationMs,
      requestTimeoutMs: spec.requestTimeoutMs ?? REQUEST_TIMEOUT_MS, maxRequestsPerClient: 50_000_000, recordAcks: spec.recordAcks ?? false,
      rotateOnError: spec.rotateOnError ?? false, seed: spec.seed ?? 1,
    };
    offset += clients;
    runs.push(runWorker(workerSpec));
  }
  const results = await Promise.all(runs);
  const windowMs = Math.max(...results.map((r) => r.windowMs));
  const errors: Record<string, number> = {};
  for (const result of results) for (const [kind, count] of Object.entries(result.errors)) errors[kind] = (errors[kind] ?? 0) + count;
  const ok = results.reduce((sum, r) => sum + r.okInWindow, 0);
  const acksMs = concatSamples(results.map((r) => r.acksMs)).sort();
  const acksElsewhereMs = concatSamples(results.map((r) => r.acksElsewhereMs)).sort();
  return {
    ok,
    opsPerSecond: windowMs > 0 ? ok / (windowMs / 1000) : NaN,
    latencyMs: summarize(concatSamples(results.map((r) => r.latenciesMs))),
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    errorSamples: results.flatMap((r) => r.errorSamples).slice(0, 5),
    loadgenCpuCores: windowMs > 0 ? results.reduce((sum, r) => sum + r.cpuMsInWindow, 0) / windowMs : NaN,
    windowMs,
    acksMs,
    acksElsewhereMs,
    startAtMs,
  };
}

function runWorker(spec: WorkerSpec): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const output: string[] = [];
    const child = spawnTracked('loadgen', process.execPath, [distPath('bench/suite/loadgen-worker.js')], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
      env: { PATH: process.env.PATH ?? '' },
    });
    keepTail(child, output, 50);
    let settled = false;
    child.on('message', (message: FromWorker) => {
      if (settled) return;
      settled = true;
      if (message.type === 'result') resolve(message.result);
      else reject(new Error(`load generator failed: ${message.message}`));
    });
    child.once('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      reject(new Error(`load generator exited (${signal ?? `code ${code}`}) without a result: ${output.slice(-10).join('\n')}`));
    });
    child.once('error', (error) => {
      if (settled) return;
      settled = true;
      void stopChild(child, 'SIGKILL');
      reject(error);
    });
    const message: ToWorker = { type: 'run', spec };
    child.send(message);
  });
}

/** CPU of a set of PIDs, for "who used the cores" lines. */
export function cpuMsOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (readProcessCpuMs(pid) || 0), 0);
}
