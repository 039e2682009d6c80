// Client-visible unavailability during a leadership transfer (POST /cluster/leader): 3 nodes (real
// processes, product timing defaults), W clients writing back to back (through every node), and T
// transfers a few seconds apart. For each transfer: failed requests, the slowest request that
// overlapped it, and the longest stretch in which no request completed (the "pause") compared with
// the same figure in the quiet baseline. Target: no failed request, a pause under 100 ms.
//
//   node dist/bench/membership/transfer.js [--writers 8] [--transfers 10] [--gap-ms 1500]

import { cpus, loadavg } from 'node:os';
import { KvClient } from '../../src/client/kv-client.js';
import { http } from '../../test/cluster/harness.js';
import { DynamicCluster } from '../../test/cluster/membership/cluster.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

interface Sample { readonly startMs: number; readonly endMs: number; readonly ok: boolean; readonly error: string }

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The longest interval inside [from, to] with no completion. */
function longestGap(samples: readonly Sample[], from: number, to: number): number {
  const ends = samples.map((s) => s.endMs).filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let gap = 0;
  let previous = from;
  for (const t of ends) {
    gap = Math.max(gap, t - previous);
    previous = t;
  }
  return Math.max(gap, to - previous);
}

async function main(): Promise<void> {
  const writers = option('writers', 8);
  const transfers = option('transfers', 10);
  const gapMs = option('gap-ms', 1500);
  console.log(`# leadership transfer under load: ${writers} writers, ${transfers} transfers; ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const cluster = await DynamicCluster.start({ founders: 3, env: { ELECTION_TIMEOUT_MIN: '150', ELECTION_TIMEOUT_MAX: '300' } });
  const samples: Sample[] = [];
  let running = true;
  try {
    await cluster.waitForMembers('three voters', (v) => v.members.every((m) => m.httpAddr !== '' && m.live === true), 30_000);
    const ports = [1, 2, 3].map((id) => cluster.machine(id).httpPort);
    const clients = Array.from({ length: writers }, (_, w) => new KvClient({ endpoints: ports.map((_, i) => `127.0.0.1:${ports[(i + w) % 3]}`), timeoutMs: 10_000 }));
    const work = clients.map(async (client, w) => {
      for (let i = 0; running; i++) {
        const startMs = performance.now();
        try {
          await client.put(`w${w}-${i % 100}`, `v${i}`);
          samples.push({ startMs, endMs: performance.now(), ok: true, error: '' });
        } catch (error) {
          samples.push({ startMs, endMs: performance.now(), ok: false, error: (error as { code?: string }).code ?? 'EXCEPTION' });
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const baselineFrom = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const baselineTo = performance.now();
    const windows: { from: number; to: number; tookMs: number; from_: number; to_: number }[] = [];
    for (let t = 0; t < transfers; t++) {
      const via = ports[t % 3];
      const from = performance.now();
      const answer = await http(via, 'POST', '/cluster/leader', '', 10_000);
      const to = performance.now();
      if (answer.status !== 200) throw new Error(`transfer ${t} failed: ${JSON.stringify(answer.body)}`);
      const body = answer.body as { previousLeader: number; leader: number; tookMs: number };
      windows.push({ from, to, tookMs: body.tookMs, from_: body.previousLeader, to_: body.leader });
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
    running = false;
    await Promise.all(work);
    for (const client of clients) client.close();

    const baseline = samples.filter((s) => s.startMs >= baselineFrom && s.endMs <= baselineTo);
    const baselineLatencies = baseline.map((s) => s.endMs - s.startMs);
    // The baseline's longest pause over windows as long as a transfer's (its 300 ms tail included).
    const windowMs = Math.max(...windows.map((w) => w.to - w.from)) + 300;
    let baselinePause = 0;
    for (let at = baselineFrom; at + windowMs <= baselineTo; at += 50) baselinePause = Math.max(baselinePause, longestGap(samples, at, at + windowMs));
    console.log(`baseline (3 s, no transfer): ${baseline.length} writes, ${Math.round(baseline.length / 3)} writes/s, latency p50 ${percentile(baselineLatencies, 50).toFixed(1)} ms, p99 ${percentile(baselineLatencies, 99).toFixed(1)} ms, max ${percentile(baselineLatencies, 100).toFixed(1)} ms; longest pause in any ${Math.round(windowMs)} ms window ${baselinePause.toFixed(1)} ms`);
    const rows: { failed: number; maxLatency: number; pause: number; tookMs: number }[] = [];
    for (const [i, w] of windows.entries()) {
      const overlapping = samples.filter((s) => s.endMs >= w.from && s.startMs <= w.to + 300);
      const failed = overlapping.filter((s) => !s.ok);
      const maxLatency = Math.max(0, ...overlapping.map((s) => s.endMs - s.startMs));
      const pause = longestGap(samples, w.from, w.to + 300);
      rows.push({ failed: failed.length, maxLatency, pause, tookMs: w.tookMs });
      console.log(`transfer ${i + 1}: ${w.from_} -> ${w.to_} in ${w.tookMs} ms (API answered in ${(w.to - w.from).toFixed(0)} ms); ${overlapping.length} overlapping writes, ${failed.length} failed${failed.length > 0 ? ` (${[...new Set(failed.map((f) => f.error))].join(',')})` : ''}, slowest ${maxLatency.toFixed(1)} ms, longest pause ${pause.toFixed(1)} ms`);
    }
    const failedTotal = rows.reduce((sum, r) => sum + r.failed, 0);
    console.log(`summary: ${failedTotal} failed requests over ${transfers} transfers; longest pause median ${percentile(rows.map((r) => r.pause), 50).toFixed(1)} ms, max ${Math.max(...rows.map((r) => r.pause)).toFixed(1)} ms; slowest request median ${percentile(rows.map((r) => r.maxLatency), 50).toFixed(1)} ms, max ${Math.max(...rows.map((r) => r.maxLatency)).toFixed(1)} ms; transfer itself median ${percentile(rows.map((r) => r.tookMs), 50)} ms`);
    console.log(JSON.stringify({ bench: 'membership-transfer', writers, transfers, failed: failedTotal, pauseMsMedian: percentile(rows.map((r) => r.pause), 50), pauseMsMax: Math.max(...rows.map((r) => r.pause)), slowestMsMax: Math.max(...rows.map((r) => r.maxLatency)), baselinePauseMs: baselinePause, baselineP99Ms: percentile(baselineLatencies, 99) }));
  } finally {
    running = false;
    await cluster.stop();
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
