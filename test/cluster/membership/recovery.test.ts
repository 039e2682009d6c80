// Recovery from losing a majority for good (--force-new-cluster), and backup/restore
// (GET /cluster/snapshot, raft-node --restore FILE), with real processes.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyBackupFile } from '../../../src/server/backup.js';
import { http, waitFor } from '../harness.js';
import { DynamicCluster, distRoot, voters, type MembersAnswer } from './cluster.js';

const clusters: DynamicCluster[] = [];
after(async () => {
  for (const cluster of clusters) await cluster.stop();
});

function kvctl(port: number, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(distRoot, 'src/cmd/kvctl.js'), '--endpoints', `127.0.0.1:${port}`, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number((error as { code?: unknown }).code ?? 1), stdout, stderr });
    });
  });
}

/** Resolves as soon as machine `id` answers HTTP at all (any status): it has just started. */
function apiUp(cluster: DynamicCluster, id: number): Promise<true> {
  return waitFor(`node ${id}'s API`, async () => {
    await http(cluster.machine(id).httpPort, 'GET', '/health', undefined, 1000);
    return true as const;
  }, 30_000, 5);
}

test('majority lost for good: --force-new-cluster makes a survivor a new 1-node cluster from its data, which then grows again', { timeout: 180_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 3 });
  clusters.push(cluster);
  try {
    const before = await cluster.waitForMembers('three voters', (v) => voters(v).length === 3, 30_000);
    const leader = before.leader;
    const survivor = [1, 2, 3].find((id) => id !== leader) as number;
    for (let i = 0; i < 50; i++) assert.equal((await cluster.request(leader, 'PUT', `/kv/key-${i}`, { value: `v${i}` })).status, 200);
    // The survivor holds every acknowledged write (it applied the last one).
    await waitFor('the survivor to apply the last write', async () => ((await cluster.request(survivor, 'GET', '/kv/key-49?consistency=stale')).status === 200 ? true : undefined), 10_000);

    for (const id of [1, 2, 3]) if (id !== survivor) await cluster.signal(id, 'SIGKILL');
    const stuck = await cluster.request(survivor, 'PUT', '/kv/no-majority', { value: 'x' }, 20_000);
    assert.ok(stuck.status === 503 || stuck.status === 504, `no write without a majority: ${stuck.status}`);

    await cluster.signal(survivor, 'SIGTERM');
    cluster.start(survivor, ['--force-new-cluster']);
    // A read that reaches the survivor while it is still electing itself waits for the leader and
    // its first commit, within the request deadline, and is served. (A lone voter once queued such
    // a read for a heartbeat round no one could answer: 504 after the full request timeout.)
    await apiUp(cluster, survivor);
    const early = await cluster.request(survivor, 'GET', '/kv/key-0');
    assert.equal(early.status, 200, `a read during the survivor's first election: ${early.status} ${JSON.stringify(early.body)}`);
    assert.equal((early.body as { value?: string }).value, 'v0');
    const forced = await cluster.waitForMembers('the survivor alone, leading', (v) => voters(v).length === 1 && v.leader === survivor, 30_000);
    assert.notEqual(forced.clusterId, before.clusterId, 'a new cluster id: members of the old cluster can never reach it');
    assert.match(cluster.logsOf(survivor), /FORCE-NEW-CLUSTER: .*writes it never received are lost/);
    for (let i = 0; i < 50; i++) {
      const got = await cluster.request(survivor, 'GET', `/kv/key-${i}`);
      assert.equal((got.body as { value?: string }).value, `v${i}`, `key-${i} survived`);
    }
    assert.equal((await cluster.request(survivor, 'PUT', '/kv/after-recovery', { value: 'new' })).status, 200);

    // Grow again with new machines (JOIN), under the survivor's new cluster id.
    await cluster.join(4, survivor);
    await cluster.join(5, survivor);
    const grown = await cluster.waitForMembers('three voters again', (v) => voters(v).length === 3 && v.members.every((m) => m.caughtUp === true), 60_000);
    assert.deepEqual(voters(grown), [survivor, 4, 5].sort((a, b) => a - b));
    // The survivor kept its log from the start: joining nodes copy the old founding configuration
    // to their index 0.
    assert.deepEqual((await cluster.members(survivor)).bootstrapMembership?.members.map((m) => m.id), [1, 2, 3], 'the configuration the log starts from');
    assert.match(cluster.logsOf(4), /"bootstrapMembership":"1=[^,]+,2=[^,]+,3=[^"]+"/);
    for (const id of [4, 5]) assert.equal(((await cluster.request(id, 'GET', '/kv/key-7')).body as { value?: string }).value, 'v7');

    // An old member coming back with its old data cannot disrupt the new cluster: it belongs to the
    // old cluster id, and every handshake it attempts is refused.
    const oldMember = [1, 2, 3].find((id) => id !== survivor) as number;
    cluster.start(oldMember);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = await cluster.members(survivor);
    assert.deepEqual(voters(after), voters(grown));
    assert.equal(after.clusterId, forced.clusterId);
    assert.equal((await cluster.request(4, 'PUT', '/kv/old-member-back', { value: 'fine' })).status, 200);
    const refusals = [survivor, 4, 5].map((id) => cluster.logsOf(id)).join('') + cluster.logsOf(oldMember);
    assert.match(refusals, /cluster id mismatch/);
    await cluster.signal(oldMember, 'SIGKILL');

    // Later restarts of the survivor need no flag; the membership is in its log.
    await cluster.signal(survivor, 'SIGTERM');
    cluster.start(survivor);
    const again = await cluster.waitForMembers('the survivor back', (v) => v.members.every((m) => m.live === true) && voters(v).length === 3, 30_000);
    assert.equal(again.clusterId, forced.clusterId);
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('force-new-cluster')}`);
    throw error;
  }
});

test('backup and restore: GET /cluster/snapshot, raft-node --restore; the restored cluster answers exactly what the snapshot held', { timeout: 180_000 }, async (t) => {
  const source = await DynamicCluster.start({ founders: 3, gateway: true, env: { SNAPSHOT_EVERY_ENTRIES: '200', SNAPSHOT_KEEP_TAIL_ENTRIES: '50' } });
  clusters.push(source);
  try {
    const view = await source.waitForMembers('three voters', (v) => voters(v).length === 3 && v.members.every((m) => m.httpAddr !== ''), 30_000);
    const expected = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const key = `key-${i % 120}`;
      if (i % 10 === 9) {
        await source.request(1 + (i % 3), 'DELETE', `/kv/${key}`);
        expected.delete(key);
      } else {
        assert.equal((await source.request(1 + (i % 3), 'PUT', `/kv/${key}`, { value: `v${i}` })).status, 200);
        expected.set(key, `v${i}`);
      }
    }
    const follower = voters(view).find((id) => id !== view.leader) as number;
    const file = join(source.root, 'cluster.backup');
    const saved = await kvctl(source.machine(follower).httpPort, 'snapshot', 'save', file);
    assert.equal(saved.code, 0, saved.stderr);
    const savedInfo = JSON.parse(saved.stdout) as { index: number; revision: number; bytes: number };
    const verified = await verifyBackupFile(file);
    assert.equal(verified.meta.nodeId, follower, 'served by the node asked');
    assert.equal(verified.meta.index, savedInfo.index);
    const revisionAtBackup = ((await source.request(view.leader, 'GET', '/kv/key-0?consistency=stale')).body as { revision: number }).revision;
    assert.equal(verified.meta.revision, revisionAtBackup, 'the backup holds every write acknowledged before it');
    for (let i = 0; i < 20; i++) await source.request(view.leader, 'PUT', `/kv/after-backup-${i}`, { value: 'late' });
    await source.request(view.leader, 'PUT', '/kv/key-1', { value: 'changed after the backup' });

    // Through the gateway too (it proxies a node's stream).
    const viaGateway = await fetch(`http://127.0.0.1:${source.gatewayPort}/cluster/snapshot`);
    assert.equal(viaGateway.status, 200);
    const gatewayFile = join(source.root, 'gateway.backup');
    writeFileSync(gatewayFile, Buffer.from(await viaGateway.arrayBuffer()));
    assert.ok((await verifyBackupFile(gatewayFile)).meta.index >= verified.meta.index);

    // A damaged backup is refused before anything is written.
    const damagedFile = join(source.root, 'damaged.backup');
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(damagedFile, bytes);
    const target = await DynamicCluster.start({ founders: 0 });
    clusters.push(target);
    await target.allocate(1, null);
    target.start(1, ['--restore', damagedFile]);
    assert.equal(await target.exited(1, 15_000), 1);
    assert.match(target.logsOf(1), /cannot restore from .*checksum mismatch/);

    // The real restore: a new single-node cluster holding exactly the backup.
    await target.allocate(2, null);
    target.start(2, ['--restore', file]);
    await apiUp(target, 2);
    const early = await target.request(2, 'GET', '/kv/key-0');
    assert.equal(early.status, 200, `a read during the restored node's first election: ${early.status} ${JSON.stringify(early.body)}`);
    const restored = await target.waitForMembers('the restored node leading', (v) => v.leader === 2, 30_000);
    assert.notEqual(restored.clusterId, view.clusterId);
    assert.equal(restored.bootstrapMembership, null, 'its log starts at the backup\'s index: joining nodes are sent a snapshot');
    const health = (await http(target.machine(2).httpPort, 'GET', '/health')).body as { keys: string };
    assert.equal(Number(health.keys), expected.size, 'the same number of keys');
    for (let i = 0; i < 120; i++) {
      const key = `key-${i}`;
      const got = await target.request(2, 'GET', `/kv/${key}`);
      if (expected.has(key)) assert.equal((got.body as { value?: string }).value, expected.get(key), `${key}: ${got.status} ${JSON.stringify(got.body)}`);
      else assert.equal(got.status, 404, `${key} was deleted before the backup`);
    }
    for (let i = 0; i < 20; i++) assert.equal((await target.request(2, 'GET', `/kv/after-backup-${i}`)).status, 404, 'written after the backup');
    const sample = (await target.request(2, 'GET', '/kv/key-0')).body as { revision: number };
    assert.equal(sample.revision, verified.meta.revision, 'the same store revision');

    // It grows like any cluster, and is writable.
    await target.join(3, 2);
    await target.waitForMembers('two voters', (v) => voters(v).length === 2 && v.members.every((m) => m.caughtUp === true), 60_000);
    assert.equal(((await target.request(3, 'GET', '/kv/key-2')).body as { value?: string }).value, expected.get('key-2'));
    assert.equal((await target.request(3, 'PUT', '/kv/restored-and-writable', { value: 'yes' })).status, 200);
    const members = (await target.members()) as MembersAnswer;
    t.diagnostic(`backup of ${expected.size} keys at index ${verified.meta.index}: ${verified.sizeBytes} bytes; restored as cluster ${members.clusterId}`);
  } catch (error) {
    t.diagnostic(`logs: ${source.dumpLogs('backup-restore')}`);
    for (const cluster of clusters.slice(1)) t.diagnostic(`restored cluster logs: ${cluster.dumpLogs('backup-restore-target')}`);
    throw error;
  }
});
