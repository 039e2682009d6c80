// Replica hash check on real processes. A normal run, with history retention compacting as writes go
// on, snapshot points every 50 entries, and a follower killed and restarted (it catches up from the
// leader's log, or by snapshot when the log was compacted past it): every node hashes the same
// checkpoints, the hashes agree, comparisons run, and no ALARM appears. Then a follower's engine is corrupted
// while it is stopped (a value changed in place with the lmdb package), it restarts, writes go on:
// the mismatch must be raised (ALARM at level error, GET /health 503, /cluster/status).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { decodeLive, HISTORY_HEADER_BYTES, u64Key } from '../../../src/kvstore/encoding.js';
import { LocalCluster, http, waitFor } from '../harness.js';

const EVERY = 20;

interface ReplicaHashView {
  readonly checkpoints: { revision: number; hash: string }[];
  readonly alarms: { revision: number; localNodeId: number; peerNodeId: number; suspect: number }[];
  readonly comparisons: number;
}

/** Node `id`'s own replica hash report, from its GET /cluster/status. */
async function replicaHash(cluster: LocalCluster, id: number): Promise<ReplicaHashView | undefined> {
  const answer = await http(cluster.handle(id).httpPort, 'GET', '/cluster/status', undefined, 3000);
  if (answer.status !== 200) return undefined;
  const nodes = (answer.body as { nodes: { nodeId: number; replicaHash?: ReplicaHashView }[] }).nodes;
  return nodes.find((node) => node.nodeId === id)?.replicaHash;
}

async function writeMany(port: number, prefix: string, count: number): Promise<number> {
  let revision = 0;
  for (let i = 0; i < count; i++) {
    const answer = await http(port, 'PUT', `/kv/${prefix}${i}`, JSON.stringify({ value: `${prefix}-value-${i}` }));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    revision = (answer.body as { revision: number }).revision;
  }
  return revision;
}

/** Change the stored value of `key` in place (same length) in a stopped node's engine. */
async function corruptValue(dataDir: string, key: string, replacement: string): Promise<void> {
  const kvDir = join(dataDir, 'kv');
  const generation = readFileSync(join(kvDir, 'CURRENT'), 'utf8').trim();
  const env = open<Buffer, Buffer>(join(kvDir, generation), { noSubdir: false, maxDbs: 10, keyEncoding: 'binary', encoding: 'binary', compression: false });
  try {
    const options = { keyEncoding: 'binary', encoding: 'binary', compression: false, cache: false } as const;
    const live = env.openDB<Buffer, Buffer>('live', options);
    const history = env.openDB<Buffer, Buffer>('history', options);
    const liveRecord = live.getBinary(Buffer.from(key, 'utf8'));
    assert.ok(liveRecord !== undefined, `${key} is live in the stopped node's engine`);
    const revisionKey = u64Key(decodeLive(Buffer.from(liveRecord)).modRevision);
    const record = Buffer.from(history.getBinary(revisionKey) as Buffer);
    const valueAt = HISTORY_HEADER_BYTES + Buffer.byteLength(key, 'utf8');
    assert.equal(record.length - valueAt, Buffer.byteLength(replacement), 'same length: the record stays well-formed');
    record.write(replacement, valueAt, 'utf8');
    await history.put(revisionKey, record);
  } finally {
    await env.close();
  }
}

test('replica hash check: silent in a normal run, ALARM after a follower engine is corrupted', async () => {
  const cluster = await LocalCluster.start({
    nodes: 3, gateway: false,
    extraEnv: { REPLICA_HASH_EVERY_REVISIONS: String(EVERY), HISTORY_RETENTION_REVISIONS: '30', SNAPSHOT_EVERY_ENTRIES: '50', SNAPSHOT_KEEP_TAIL_ENTRIES: '10' },
  });
  try {
    const leader = await cluster.waitForLeader();
    const leaderPort = cluster.handle(leader).httpPort;
    const victim = 'victim-key';
    assert.equal((await http(leaderPort, 'PUT', `/kv/${victim}`, JSON.stringify({ value: 'original-value' }))).status, 200);
    await writeMany(leaderPort, 'a', 3 * EVERY);
    // A follower is killed, misses writes (and hash checkpoints), restarts and catches up.
    const [restarted, corrupted] = [...cluster.nodes.keys()].filter((id) => id !== leader);
    await cluster.signal(restarted, 'SIGKILL');
    await writeMany(leaderPort, 'b', 6 * EVERY);
    cluster.startNode(restarted);
    const revision = await writeMany(leaderPort, 'c', 3 * EVERY);
    const bySnapshot = cluster.logsOf(restarted).includes('"msg":"snapshot installed"');
    const checkpoint = Math.floor(revision / EVERY) * EVERY;

    // ---- A normal run: same checkpoint hashes everywhere, comparisons made, no alarm.
    const hashes = new Map<number, string>();
    for (const id of cluster.nodes.keys()) {
      const view = await waitFor(`node ${id} to hash checkpoint ${checkpoint}`, async () => {
        const got = await replicaHash(cluster, id);
        return got?.checkpoints.some((c) => c.revision === checkpoint) ? got : undefined;
      }, 20_000);
      hashes.set(id, view.checkpoints.find((c) => c.revision === checkpoint)?.hash ?? '');
    }
    assert.equal(new Set(hashes.values()).size, 1, `all nodes agree at revision ${checkpoint}: ${JSON.stringify([...hashes])}`);
    for (const id of cluster.nodes.keys()) {
      const port = cluster.handle(id).httpPort;
      const before = (await replicaHash(cluster, id))?.comparisons ?? 0;
      // Two more comparisons: a full round with both peers, made after every node held the checkpoint.
      await waitFor(`node ${id} to compare with its peers`, async () => (((await replicaHash(cluster, id))?.comparisons ?? 0) >= before + 2 ? true : undefined), 20_000);
      const view = await replicaHash(cluster, id);
      assert.deepEqual(view?.alarms, [], `node ${id}: no alarm in a normal run`);
      assert.equal((await http(port, 'GET', '/health')).status, 200);
      assert.ok(!cluster.logsOf(id).includes('ALARM'), `node ${id} logged no ALARM`);
    }

    // ---- Corrupt a follower's engine while it is stopped, restart it, write more.
    const follower = corrupted;
    const followerPort = cluster.handle(follower).httpPort;
    await cluster.signal(follower, 'SIGTERM');
    await corruptValue(cluster.handle(follower).dataDir, victim, 'CORRUPTED-VAL!');
    cluster.startNode(follower);
    await waitFor(`node ${follower} to serve again`, async () => ((await http(followerPort, 'GET', `/kv/${victim}?consistency=stale`, undefined, 1000)).status === 200 ? true : undefined), 20_000);
    const seen = await http(followerPort, 'GET', `/kv/${victim}?consistency=stale`);
    assert.equal((seen.body as { value: string }).value, 'CORRUPTED-VAL!', 'the corruption took effect');
    await writeMany(leaderPort, 'b', 2 * EVERY);

    const health = await waitFor(`node ${follower} to report the mismatch`, async () => {
      const answer = await http(followerPort, 'GET', '/health', undefined, 1000);
      return answer.status === 503 && String((answer.body as { reason?: string }).reason).includes('ALARM') ? answer : undefined;
    }, 30_000);
    const alarms = (health.body as { alarms: { peerNodeId: number; suspect: number }[] }).alarms;
    assert.ok(alarms.length >= 1);
    const alarmLine = cluster.logsOf(follower).split('\n').find((line) => line.includes('ALARM: replica state hash mismatch'));
    assert.ok(alarmLine !== undefined, 'the ALARM is logged');
    assert.equal((JSON.parse(alarmLine) as { level: string }).level, 'error');
    // The healthy nodes see it too, naming the corrupted follower.
    const leaderView = await waitFor('the leader to raise the alarm', async () => {
      const view = await replicaHash(cluster, leader);
      return view !== undefined && view.alarms.some((alarm) => alarm.peerNodeId === follower && alarm.suspect === follower) ? view : undefined;
    }, 30_000);
    // The two agreeing replicas outvote the damaged one: only it reports itself unhealthy.
    assert.ok(alarms.some((alarm) => alarm.suspect === follower), 'the damaged follower names itself the suspect');
    assert.equal((await http(cluster.handle(leader).httpPort, 'GET', '/health')).status, 200, 'the leader stays healthy');
    console.log(`# replica hash: ${hashes.size} nodes agreed at revision ${checkpoint} (node ${restarted} restarted, caught up ${bySnapshot ? 'by snapshot' : 'from the log'}); after corrupting node ${follower}: ${alarms.length} alarm(s) there, ${leaderView.alarms.length} on the leader (first at revision ${leaderView.alarms[0].revision})`);
  } finally {
    await cluster.stop();
  }
});
