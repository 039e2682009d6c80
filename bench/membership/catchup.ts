// Time for a new node to join a cluster holding a lot of data, catch up and be promoted: 3 nodes
// (real processes on loopback, product timing defaults) are loaded with N keys, then a 4th starts
// with JOIN and an empty data directory. Reported: the load, and from the new process's start to
// (a) added as a learner, (b) caught up (within PROMOTE_MAX_LAG_ENTRIES, default 1000), (c) voter;
// how the data travelled (snapshot or log) and the snapshot's size.
//
//   node dist/bench/membership/catchup.js [--keys 100000] [--value-bytes 100] [--concurrency 64] [--load-during-join]

import { cpus, loadavg } from 'node:os';
import { KvClient } from '../../src/client/kv-client.js';
import { DynamicCluster, voters } from '../../test/cluster/membership/cluster.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

async function load(port: number, keys: number, valueBytes: number, concurrency: number): Promise<number> {
  const client = new KvClient({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 30_000, maxSockets: concurrency });
  const value = 'x'.repeat(valueBytes);
  let next = 0;
  const startedMs = performance.now();
  try {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < keys; i = next++) await client.put(`key-${String(i).padStart(7, '0')}`, value);
    }));
  } finally {
    client.close();
  }
  return performance.now() - startedMs;
}

async function main(): Promise<void> {
  const keys = option('keys', 100_000);
  const valueBytes = option('value-bytes', 100);
  const concurrency = option('concurrency', 64);
  const loadDuringJoin = process.argv.includes('--load-during-join');
  console.log(`# catch-up of a joining node: ${keys} keys of ${valueBytes} B; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const cluster = await DynamicCluster.start({ founders: 3, env: { ELECTION_TIMEOUT_MIN: '150', ELECTION_TIMEOUT_MAX: '300', LOG_LEVEL: 'info' } });
  try {
    const leader = await cluster.leader(30_000);
    const loadMs = await load(cluster.machine(leader).httpPort, keys, valueBytes, concurrency);
    const status = (await cluster.health(leader)) ?? {};
    console.log(`load: ${keys} puts in ${(loadMs / 1000).toFixed(1)} s (${Math.round(keys / (loadMs / 1000))} writes/s, concurrency ${concurrency}); leader commit index ${String(status.commitIndex)}`);

    let background: Promise<void> | null = null;
    let stopBackground = false;
    let backgroundWrites = 0;
    if (loadDuringJoin) {
      const client = new KvClient({ endpoints: [`127.0.0.1:${cluster.machine(leader).httpPort}`], timeoutMs: 30_000 });
      background = (async () => {
        while (!stopBackground) {
          await client.put(`during-${backgroundWrites++ % 1000}`, 'y'.repeat(valueBytes));
        }
        client.close();
      })();
    }

    const joinVia = [1, 2, 3].find((id) => id !== leader) as number;
    await cluster.allocate(4, cluster.machine(joinVia).httpPort);
    const startedMs = performance.now();
    cluster.start(4);
    let addedMs = 0;
    let caughtUpMs = 0;
    let promotedMs = 0;
    while (promotedMs === 0) {
      let view;
      try {
        view = await cluster.members(leader, 2000);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const now = performance.now() - startedMs;
      const member = view.members.find((m) => m.id === 4);
      if (member !== undefined && addedMs === 0) addedMs = now;
      if (member?.caughtUp === true && caughtUpMs === 0) caughtUpMs = now;
      if (voters(view).includes(4)) promotedMs = now;
      if (now > 600_000) throw new Error('no promotion within 10 minutes');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    stopBackground = true;
    await background;
    const joinerLogs = cluster.logsOf(4);
    const snapshotInstalled = /"msg":"snapshot installed"/.test(joinerLogs);
    const leaderLogs = cluster.logsOf(leader);
    const sends = leaderLogs.split('\n').filter((line) => line.includes('"msg":"sending snapshot"') && line.includes('"to":4'));
    const stats = joinerLogs.split('\n').find((line) => line.includes('"msg":"snapshot installed"') && line.includes('revision'));
    console.log(`join (from process start): added as learner ${Math.round(addedMs)} ms, caught up ${Math.round(caughtUpMs)} ms, promoted to voter ${Math.round(promotedMs)} ms`);
    console.log(`data travelled as: ${snapshotInstalled ? `a snapshot (${sends.length} send(s)) and then the log` : 'the log only'}${loadDuringJoin ? `; ${backgroundWrites} writes went on during the join` : ''}`);
    if (stats !== undefined) console.log(`joiner: ${stats.slice(0, 300)}`);
    if (process.argv.includes('--verbose')) {
      for (const line of [...sends, ...leaderLogs.split('\n').filter((l) => l.includes('snapshot transfer failed') || l.includes('snapshot not sent'))]) console.log(`leader: ${line.slice(0, 300)}`);
      for (const line of joinerLogs.split('\n').filter((l) => l.includes('snapshot'))) console.log(`joiner: ${line.slice(0, 300)}`);
    }
    console.log(JSON.stringify({ bench: 'membership-catchup', keys, valueBytes, loadMs: Math.round(loadMs), addedMs: Math.round(addedMs), caughtUpMs: Math.round(caughtUpMs), promotedMs: Math.round(promotedMs), snapshot: snapshotInstalled, loadDuringJoin, backgroundWrites }));
  } finally {
    await cluster.stop();
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
