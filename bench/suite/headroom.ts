// The load generator's headroom: the same generator, processes and clients against a server that does
// nothing (trivial-server.ts, its own process on loopback), in the same run. If it drives far more
// there than any system under test takes, it was not what limited them.

import { createInterface } from 'node:readline';
import { remainingMs, type SuiteContext } from './context.js';
import { runLoad } from './loadgen.js';
import { distPath } from './paths.js';
import { freePort, keepTail, spawnTracked, stopChild } from './processes.js';
import type { LatencySummary } from './stats.js';


export interface HeadroomRecord {
  readonly workload: 'write' | 'read';
  readonly valueBytes: number;
  readonly clients: number;
  readonly opsPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly loadgenCpuCores: number;
  /** Load generator CPU per request, µs. */
  readonly loadgenCpuMicrosPerOp: number;
  readonly errorCount: number;
}

export async function runHeadroom(context: SuiteContext, onRecord: (record: HeadroomRecord) => void): Promise<HeadroomRecord[]> {
  const { options } = context;
  const records: HeadroomRecord[] = [];
  const valueBytes = options.valueSizes.includes(100) ? 100 : options.valueSizes[0];
  const port = await freePort();
  const output: string[] = [];
  const server = spawnTracked('trivial server', process.execPath, [distPath('bench/suite/trivial-server.js')], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port), VALUE_BYTES: String(valueBytes), MAX_SECONDS: '900' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the trivial server did not start: ${output.join(' ')}`)), 10_000);
      createInterface({ input: server.stdout! }).once('line', () => { clearTimeout(timer); resolve(); });
      server.once('exit', () => { clearTimeout(timer); reject(new Error(`the trivial server exited: ${output.join(' ')}`)); });
    });
    keepTail(server, output, 20);
    for (const workload of ['write', 'read'] as const) {
      for (const clients of options.headroomClients) {
        if (remainingMs(context) < options.warmupMs + options.durationMs + 2000) {
          context.skipped.push(`headroom ${workload} ${clients} clients: time limit`);
          continue;
        }
        context.progress.set(`headroom: load generator against a do-nothing server, ${workload}, ${clients} clients`);
        const result = await runLoad({
          system: 'trivial', endpoints: [port], workload, valueBytes, keyCount: options.keyCount, clients,
          warmupMs: options.warmupMs, durationMs: options.durationMs, processes: options.loadProcesses,
        });
        const record: HeadroomRecord = {
          workload, valueBytes, clients, opsPerSecond: result.opsPerSecond, latencyMs: result.latencyMs, loadgenCpuCores: result.loadgenCpuCores,
          loadgenCpuMicrosPerOp: (result.loadgenCpuCores * 1e6) / result.opsPerSecond, errorCount: result.errorCount,
        };
        records.push(record);
        onRecord(record);
      }
    }
  } finally {
    await stopChild(server, 'SIGTERM', 2000);
  }
  return records;
}
