// How a node comes up from its data directory and settings (src/server/bootstrap.ts), on real
// write-ahead logs and state machines in temporary directories.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type Logger } from '../../../src/common/logger.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { encodeCommand } from '../../../src/kvstore/commands.js';
import type { Entry } from '../../../src/raft/types.js';
import { openDataDir } from '../../../src/storage/data-dir.js';
import { RaftLogStore } from '../../../src/storage/wal.js';
import { backupChunks } from '../../../src/server/backup.js';
import { bootstrap, type Bootstrapped } from '../../../src/server/bootstrap.js';
import { FOUNDING_FILE, parseMembership, readFoundingRecord } from '../../../src/server/founding-record.js';
import { loadNodeConfig } from '../../../src/server/node-config.js';
import { parseFlags, type RawSettings } from '../../../src/server/settings.js';
import { writeRemovalRecord } from '../../../src/server/removal-marker.js';
import { writeFileSync } from 'node:fs';

const CN = '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3';

function recordingLogger(lines: string[]): Logger {
  return createLogger('debug', {}, (line) => { lines.push(line); });
}

interface Opened {
  readonly result: Bootstrapped;
  readonly lines: string[];
}

/** Open the data directory like startNode does, bootstrap, optionally write, and close it all. */
async function boot(dataDir: string, raw: RawSettings, args: string[] = [], write?: (wal: RaftLogStore, kv: KvStateMachine, result: Bootstrapped) => Promise<void>): Promise<Opened> {
  const lines: string[] = [];
  const logger = recordingLogger(lines);
  const config = loadNodeConfig({ ...raw, ...parseFlags(args), DATA_DIR: dataDir }, '/');
  const dir = await openDataDir(dataDir, logger);
  const { store: wal, recovered } = await RaftLogStore.open(join(dataDir, 'wal'), { logger });
  const kv = await KvStateMachine.open(join(dataDir, 'kv'), { logger });
  try {
    const result = await bootstrap({ config, logger, dataDir: dir, wal, recovered, kv, running: () => true });
    if (write !== undefined) await write(wal, kv, result);
    return { result, lines };
  } finally {
    await wal.close();
    await kv.close();
    await dir.release();
  }
}

function put(index: number, term: number, key: string, value: string): Entry {
  return { kind: 'command', index, term, data: encodeCommand({ v: 1, op: 'put', key, value, proposedAtMs: 1 }) };
}

/** A founding member that ran: its log holds entries 1..3 (two writes), all committed and applied. */
async function foundAndRun(dataDir: string, id = 1): Promise<Bootstrapped> {
  const { result } = await boot(dataDir, { NODE_ID: String(id), CLUSTER_NODES: CN }, [], async (wal, kv) => {
    const entries: Entry[] = [{ kind: 'noop', index: 1, term: 1 }, put(2, 1, 'a', '1'), put(3, 1, 'b', '2')];
    await wal.save({ hardState: { term: 1, votedFor: 1, commitIndex: 3 }, entries, snapshot: null });
    kv.apply(entries);
    await kv.sync();
  });
  return result;
}

function withDir(body: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'bootstrap-test-'));
    try {
      await body(join(root, 'node'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test('a founding member records the founding membership; a restart ignores CLUSTER_NODES, with a log line', withDir(async (dir) => {
  const first = await foundAndRun(dir);
  assert.equal(first.mode, 'founded');
  assert.deepEqual(first.initial.snapshot.membership.members.map((m) => [m.id, m.role, m.httpAddr]), [[1, 'voter', ''], [2, 'voter', ''], [3, 'voter', '']]);
  // Restarted with a different CLUSTER_NODES (someone edited the deployment): the log wins.
  const again = await boot(dir, { NODE_ID: '1', CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:9', NODE_ADDR: '127.0.0.1:1' });
  assert.equal(again.result.mode, 'resumed');
  assert.equal(again.result.clusterId, first.clusterId, 'the cluster id comes from the data directory');
  assert.deepEqual(again.result.initial.snapshot.membership.members.map((m) => m.peerAddr), ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
  assert.ok(again.lines.some((line) => line.includes('CLUSTER_NODES ignored')));
  // And without CLUSTER_NODES at all.
  const bare = await boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' });
  assert.equal(bare.result.initial.entries.length, 3);
  assert.equal(bare.result.joining, false);
}));

test('a new data directory needs CLUSTER_NODES or JOIN; another node\'s directory is refused', withDir(async (dir) => {
  await assert.rejects(boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }), /needs CLUSTER_NODES .* or JOIN/);
  await foundAndRun(dir, 1);
  await assert.rejects(boot(dir, { NODE_ID: '2', CLUSTER_NODES: CN }), /belongs to node 1, not NODE_ID 2/);
}));

test('a removed node refuses to start with its old data directory', withDir(async (dir) => {
  const founded = await foundAndRun(dir);
  await writeRemovalRecord(dir, { clusterId: founded.clusterId, nodeId: 1, index: 9, how: 'test', removedAt: 'now' });
  await assert.rejects(boot(dir, { NODE_ID: '1', CLUSTER_NODES: CN }), /was removed from cluster .* empty DATA_DIR and JOIN/);
}));

test('--force-new-cluster: the whole log is kept and committed, then a membership of this node alone, under a new cluster id', withDir(async (dir) => {
  const founded = await foundAndRun(dir, 2);
  const forced = await boot(dir, { NODE_ID: '2', NODE_ADDR: '127.0.0.1:2', HTTP_ADDR: '127.0.0.1:8082' }, ['--force-new-cluster']);
  const { result } = forced;
  assert.equal(result.mode, 'forced-new-cluster');
  assert.notEqual(result.clusterId, founded.clusterId);
  const last = result.initial.entries[result.initial.entries.length - 1];
  assert.equal(last.index, 4);
  assert.equal(last.kind, 'config');
  assert.deepEqual(last.kind === 'config' ? last.membership.members : null, [{ id: 2, role: 'voter', peerAddr: '127.0.0.1:2', httpAddr: '127.0.0.1:8082' }]);
  assert.equal(result.initial.hardState.commitIndex, 4);
  assert.ok(forced.lines.some((line) => line.includes('FORCE-NEW-CLUSTER') && line.includes('lost')));
  // The change is durable: a plain restart resumes the new single-node cluster.
  const again = await boot(dir, { NODE_ID: '2', NODE_ADDR: '127.0.0.1:2' });
  assert.equal(again.result.clusterId, result.clusterId);
  assert.equal(again.result.initial.entries.length, 4);
  assert.equal(again.result.initial.hardState.commitIndex, 4);
  // Its log still starts from the old founding configuration: nodes joining it copy that one.
  assert.deepEqual(result.bootstrapMembership, founded.bootstrapMembership);
  assert.deepEqual(again.result.bootstrapMembership, founded.bootstrapMembership);
}));

test('--force-new-cluster needs a survivor\'s data; --restore needs an empty directory', withDir(async (dir) => {
  await assert.rejects(boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }, ['--force-new-cluster']), /needs the data directory of a surviving member/);
  await foundAndRun(dir);
  await assert.rejects(boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }, ['--restore', '/nonexistent']), /--restore needs an empty DATA_DIR/);
}));

test('--restore: the state machine from the file, a snapshot point at its index, this node alone, a new cluster id', withDir(async (dir) => {
  // Make a backup from a founding member's state machine.
  const source = `${dir}-source`;
  let exportedIndex = 0;
  const file = `${dir}.backup`;
  await foundAndRun(source);
  await boot(source, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }, [], async (_wal, kv) => {
    const exported = kv.exportSnapshot();
    exportedIndex = exported.appliedIndex;
    const parts: Buffer[] = [];
    for await (const chunk of backupChunks({ format: 'raft-kv-backup', clusterId: 'aaaaaaaaaaaaaaaa', nodeId: 1, index: exported.appliedIndex, term: 1, revision: exported.revision, membership: { members: [] }, createdAt: 'now' }, exported.chunks)) parts.push(Buffer.from(chunk));
    writeFileSync(file, Buffer.concat(parts));
  });
  assert.equal(exportedIndex, 3);
  const restored = await boot(dir, { NODE_ID: '5', NODE_ADDR: '127.0.0.1:5', HTTP_ADDR: '127.0.0.1:8085' }, ['--restore', file], async (_wal, kv) => {
    assert.equal(kv.get('a').kv?.value, '1');
    assert.equal(kv.get('b').kv?.value, '2');
  });
  assert.equal(restored.result.mode, 'restored');
  assert.equal(restored.result.initial.snapshot.index, 3);
  assert.deepEqual(restored.result.initial.snapshot.membership.members.map((m) => m.id), [5]);
  const again = await boot(dir, { NODE_ID: '5', NODE_ADDR: '127.0.0.1:5' });
  assert.equal(again.result.clusterId, restored.result.clusterId);
  assert.equal(again.result.initial.snapshot.index, 3);
  // Its log starts at the backup's index: nothing at index 0 for a joining node to copy.
  assert.equal(restored.result.bootstrapMembership, null);
  assert.equal(again.result.bootstrapMembership, null);
  assert.deepEqual(await readFoundingRecord(dir), { clusterId: restored.result.clusterId, membership: null });
}));

test('FOUNDING keeps the configuration the log starts from past compaction; a directory without it gets it from the log while it can', withDir(async (dir) => {
  const founded = await foundAndRun(dir);
  const founding = founded.initial.snapshot.membership;
  assert.deepEqual(founded.bootstrapMembership, founding);
  assert.deepEqual(await readFoundingRecord(dir), { clusterId: founded.clusterId, membership: founding });
  // A directory from before FOUNDING (or a crash just before it was written): the log's index 0.
  rmSync(join(dir, FOUNDING_FILE));
  const legacy = await boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' });
  assert.deepEqual(legacy.result.bootstrapMembership, founding);
  assert.deepEqual((await readFoundingRecord(dir))?.membership, founding, 'recorded now, before compaction loses it');
  // Compacted: the log no longer holds index 0, FOUNDING still does.
  await boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }, [], async (wal) => {
    await wal.compact({ index: 3, term: 1, membership: founding }, 3);
  });
  const compacted = await boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' });
  assert.equal(compacted.result.initial.snapshot.index, 3);
  assert.deepEqual(compacted.result.bootstrapMembership, founding);
  // Without either, it is not known here (never made up).
  rmSync(join(dir, FOUNDING_FILE));
  assert.equal((await boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' })).result.bootstrapMembership, null);
  // A damaged record stops the node with a clear error.
  writeFileSync(join(dir, FOUNDING_FILE), 'raft-kv founding 1\n{"clusterId": "x", "membership": {"members": [{"id": -1}]}}\n');
  await assert.rejects(boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }), /FOUNDING is damaged/);
  writeFileSync(join(dir, FOUNDING_FILE), 'something else');
  await assert.rejects(boot(dir, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:1' }), /FOUNDING is damaged/);
}));

test('JOIN: the cluster id is learned from a member and kept; a restart needs no JOIN to resume', withDir(async (dir) => {
  const members = { clusterId: 'fedcba9876543210', leader: 1, term: 3, membershipIndex: 5, view: 'leader', nodeId: 1, members: [{ id: 1, peerAddr: '127.0.0.1:1', httpAddr: '127.0.0.1:8081', role: 'voter' }] };
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/cluster/members' ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(members));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const joined = await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4', JOIN: `127.0.0.1:${port}` });
    assert.equal(joined.result.mode, 'joining');
    assert.equal(joined.result.clusterId, 'fedcba9876543210');
    assert.equal(joined.result.joining, true);
    assert.deepEqual(joined.result.knownPeers.map((m) => m.peerAddr), ['127.0.0.1:1'], 'it can answer the members it was told of');
    assert.deepEqual(joined.result.initial.snapshot.membership.members, [], 'the membership comes from the log');
    const again = await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4', JOIN: `127.0.0.1:${port}` });
    assert.equal(again.result.clusterId, 'fedcba9876543210');
    assert.equal(again.result.joining, true, 'not a member yet: keep asking');
    // An id already taken by a member at another address is refused before anything is written.
    await assert.rejects(boot(`${dir}-other`, { NODE_ID: '1', NODE_ADDR: '127.0.0.1:7', JOIN: `127.0.0.1:${port}` }), /NODE_ID 1 is already a member/);
  } finally {
    server.close();
  }
}));

/** A member's API answering GET /cluster/members with each of `answers` in turn (the last for good). */
async function membersServer(answers: readonly unknown[]): Promise<{ port: number; asked: () => number; close: () => void }> {
  let asked = 0;
  const server = createServer((req, res) => {
    const answer = answers[Math.min(asked, answers.length - 1)];
    if (req.url === '/cluster/members') asked++;
    res.writeHead(req.url === '/cluster/members' ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, asked: () => asked, close: () => server.close() };
}

const FOUNDING = {
  members: [1, 2, 3].map((id) => ({ id, role: 'voter', peerAddr: `127.0.0.1:${id}`, httpAddr: '' })),
};
const CURRENT = {
  clusterId: 'fedcba9876543210', leader: 1, term: 3, membershipIndex: 9, view: 'leader', nodeId: 1,
  members: [{ id: 1, peerAddr: '127.0.0.1:1', httpAddr: '127.0.0.1:8081', role: 'voter' }, { id: 3, peerAddr: '127.0.0.1:3', httpAddr: '127.0.0.1:8083', role: 'voter' }],
};

test('JOIN: a joining node records at index 0 the configuration the members\' logs hold there, as the founders did', withDir(async (dir) => {
  const api = await membersServer([{ ...CURRENT, bootstrapMembership: FOUNDING }]);
  try {
    const joined = await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4', JOIN: `127.0.0.1:${api.port}` });
    assert.equal(joined.result.mode, 'joining');
    assert.equal(joined.result.joining, true);
    assert.deepEqual(joined.result.initial.snapshot, { index: 0, term: 0, membership: FOUNDING });
    assert.deepEqual(joined.result.appliedMembership, FOUNDING);
    assert.deepEqual(joined.result.bootstrapMembership, FOUNDING, 'and tells nodes joining after it');
    // Recorded on disk: a restart before the cluster added it starts from the same index 0.
    const again = await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4', JOIN: `127.0.0.1:${api.port}` });
    assert.deepEqual(again.result.initial.snapshot, { index: 0, term: 0, membership: FOUNDING });
    assert.deepEqual(again.result.bootstrapMembership, FOUNDING);
    assert.equal(again.result.joining, true, 'not a member yet: keep asking');
    assert.equal(api.asked(), 1, 'a restart does not ask again');
  } finally {
    api.close();
  }
}));

test('JOIN: an id in the configuration at index 0 (a founding member\'s, since removed) is refused before anything is written', withDir(async (dir) => {
  const api = await membersServer([{ ...CURRENT, bootstrapMembership: FOUNDING }]);
  try {
    await assert.rejects(boot(dir, { NODE_ID: '2', NODE_ADDR: '127.0.0.1:9', JOIN: `127.0.0.1:${api.port}` }), /NODE_ID 2 is a founding member of cluster fedcba9876543210/);
    const fresh = await boot(dir, { NODE_ID: '5', NODE_ADDR: '127.0.0.1:5', JOIN: `127.0.0.1:${api.port}` });
    assert.equal(fresh.result.clusterId, 'fedcba9876543210', 'the directory was left empty: another id can use it');
  } finally {
    api.close();
  }
}));

test('JOIN: a member whose log no longer reaches index 0 says so (null), and the joining node starts from nothing', withDir(async (dir) => {
  const api = await membersServer([{ ...CURRENT, bootstrapMembership: null }]);
  try {
    const joined = await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4', JOIN: `127.0.0.1:${api.port}` });
    assert.deepEqual(joined.result.initial.snapshot, { index: 0, term: 0, membership: { members: [] } });
    assert.match(joined.lines.join(''), /unknown \(the leader will send a snapshot\)/);
    assert.equal(joined.result.bootstrapMembership, null, 'and says so to nodes joining after it');
    assert.equal((await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4' })).result.bootstrapMembership, null);
  } finally {
    api.close();
  }
}));

test('JOIN: a malformed configuration at index 0 is not trusted', () => {
  const malformed: unknown[] = [
    { members: [{ id: 0, role: 'voter', peerAddr: 'a:1', httpAddr: '' }] },
    { members: [{ id: 1.5, role: 'voter', peerAddr: 'a:1', httpAddr: '' }] },
    { members: [{ id: 1, role: 'boss', peerAddr: 'a:1', httpAddr: '' }] },
    { members: [{ id: 1, role: 'voter', peerAddr: '', httpAddr: '' }] },
    { members: [{ id: 1, role: 'voter', peerAddr: 'a:1' }] },
    { members: [{ id: 1, role: 'voter', peerAddr: 'a:1', httpAddr: '' }, { id: 1, role: 'learner', peerAddr: 'b:1', httpAddr: '' }] },
    { members: [null] },
    { members: 'all of them' },
    'members',
  ];
  for (const value of malformed) assert.equal(parseMembership(value), undefined, JSON.stringify(value));
  assert.deepEqual(parseMembership({ members: [{ id: 7, role: 'learner', peerAddr: 'a:1', httpAddr: 'a:2', extra: true }] }), { members: [{ id: 7, role: 'learner', peerAddr: 'a:1', httpAddr: 'a:2' }] });
});

test('JOIN: a view with a malformed configuration at index 0 is not used: the node asks again', withDir(async (dir) => {
  const api = await membersServer([{ ...CURRENT, bootstrapMembership: { members: [{ id: 1, role: 'boss' }] } }, { ...CURRENT, bootstrapMembership: FOUNDING }]);
  try {
    const joined = await boot(dir, { NODE_ID: '4', NODE_ADDR: '127.0.0.1:4', JOIN: `127.0.0.1:${api.port}` });
    assert.equal(api.asked(), 2);
    assert.deepEqual(joined.result.initial.snapshot.membership, FOUNDING);
  } finally {
    api.close();
  }
}));

test('the REMOVED record round-trips, and any REMOVED file means removed', withDir(async (dir) => {
  const { readRemovalRecord } = await import('../../../src/server/removal-marker.js');
  await foundAndRun(dir);
  assert.equal(await readRemovalRecord(dir), null);
  const record = { clusterId: 'c', nodeId: 1, index: 7, how: 'why', removedAt: 'when' };
  await writeRemovalRecord(dir, record);
  assert.deepEqual(await readRemovalRecord(dir), record);
  writeFileSync(join(dir, 'REMOVED'), 'garbage');
  assert.equal((await readRemovalRecord(dir))?.how, 'unreadable REMOVED file');
}));
