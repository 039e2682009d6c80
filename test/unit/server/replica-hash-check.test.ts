// Replica hash check: which checkpoint is hashed when, and that comparing with peers raises an
// alarm exactly when two replicas disagree at the same revision (never for a healthy pair whose
// apply batches, restarts and compactions differ).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, silentLogger } from '../../../src/common/logger.js';
import { decodeCommand } from '../../../src/kvstore/commands.js';
import type { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { mismatches, nextCheckpoint, parseCheckpoints, ReplicaHashCheck } from '../../../src/server/replica-hash-check.js';
import { freshMachine, LogBuilder, SeededRandom } from '../kvstore/helpers.js';

test('nextCheckpoint: the oldest due multiple, within a bounded backlog, skipping compacted ones', () => {
  // [revision, compacted, lastHashed, every, expected]
  const table: [number, number, number, number, number | null][] = [
    [99, 0, 0, 100, null],
    [100, 0, 0, 100, 100],
    [250, 0, 100, 100, 200],
    [250, 0, 200, 100, null],
    [10_050, 0, 0, 100, 9_700], // a restarted node: the newest four only
    [450, 250, 100, 100, 300], // 200 was compacted away
    [450, 300, 100, 100, 300], // the compacted revision itself is readable
    [450, 420, 100, 100, null], // everything due was compacted
  ];
  for (const [revision, compacted, lastHashed, every, expected] of table) {
    assert.equal(nextCheckpoint(revision, compacted, lastHashed, every), expected, `${revision}/${compacted}/${lastHashed}/${every}`);
  }
});

test('mismatches and parseCheckpoints', () => {
  const h = (c: string): string => c.repeat(64);
  assert.deepEqual(mismatches([{ revision: 1, hash: h('a') }, { revision: 2, hash: h('b') }], [{ revision: 2, hash: h('c') }, { revision: 3, hash: h('d') }]), [{ revision: 2, ours: h('b'), theirs: h('c') }]);
  assert.deepEqual(mismatches([{ revision: 2, hash: h('b') }], [{ revision: 2, hash: h('b') }]), []);
  assert.deepEqual(parseCheckpoints([{ revision: 5, hash: h('e') }, { revision: -1, hash: h('e') }, { revision: 6, hash: 'zz' }, null, 7]), [{ revision: 5, hash: h('e') }]);
  assert.deepEqual(parseCheckpoints('garbage'), []);
});

function workload(seed: number, count: number): LogBuilder {
  const random = new SeededRandom(seed);
  const log = new LogBuilder();
  for (let i = 0; i < count; i++) {
    const key = `key/${random.int(30)}`;
    if (random.chance(0.15)) log.del(key);
    else log.put(key, `v${i}`);
    if (i % 97 === 96) log.compact(Math.max(1, Math.floor(i * 0.8))); // compactions, as retention proposes
  }
  return log;
}

/** Apply `entries` in batches of `batch`, running the check's hook after each, like the runtime. */
async function drive(sm: KvStateMachine, check: ReplicaHashCheck, entries: readonly Entry[], batch: number): Promise<void> {
  for (let start = 0; start < entries.length; start += batch) {
    sm.apply(entries.slice(start, start + batch));
    check.afterApply();
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Let the last hash finish, then look once more.
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
  check.afterApply();
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
}

test('healthy replicas with different batching produce common checkpoints and no alarm', async () => {
  const a = await freshMachine({ unsafeNoSync: true });
  const b = await freshMachine({ unsafeNoSync: true });
  try {
    const checkA = new ReplicaHashCheck({ nodeId: 1, everyRevisions: 50, state: a.sm, logger: silentLogger });
    const checkB = new ReplicaHashCheck({ nodeId: 2, everyRevisions: 50, state: b.sm, logger: silentLogger });
    const log = workload(3, 800);
    await drive(a.sm, checkA, log.entries, 1);
    await drive(b.sm, checkB, log.entries, 37);
    const common = checkA.checkpoints.filter((c) => checkB.checkpoints.some((d) => d.revision === c.revision));
    assert.ok(common.length >= 3, `common checkpoints: ${common.map((c) => c.revision).join(',')}`);
    assert.deepEqual(checkA.compare({ nodeId: 2, checkpoints: checkB.checkpoints }), []);
    assert.deepEqual(checkB.compare({ nodeId: 1, checkpoints: checkA.checkpoints }), []);
    assert.equal(checkA.alarms.length, 0);
  } finally {
    await a.done();
    await b.done();
  }
});

test('a replica whose state differs raises one ALARM per peer and revision, logged at level error', async () => {
  const a = await freshMachine({ unsafeNoSync: true });
  const b = await freshMachine({ unsafeNoSync: true });
  try {
    const lines: string[] = [];
    const logger = createLogger('info', {}, (line) => lines.push(line));
    const checkA = new ReplicaHashCheck({ nodeId: 1, everyRevisions: 50, state: a.sm, logger });
    const checkB = new ReplicaHashCheck({ nodeId: 2, everyRevisions: 50, state: b.sm, logger: silentLogger });
    const log = workload(5, 300);
    // b's log differs in one value early on: the same revisions, a different state.
    const other = workload(5, 300);
    const tampered = other.entries.map((entry) => entry);
    const index = tampered.findIndex((entry) => entry.kind === 'command' && decodeCommand(entry.data).op === 'put');
    const original = tampered[index];
    const command = original.kind === 'command' ? decodeCommand(original.data) : null;
    assert.ok(command !== null && command.op === 'put');
    tampered[index] = new LogBuilder(original.index).put(command.key, 'tampered');
    await drive(a.sm, checkA, log.entries, 10);
    await drive(b.sm, checkB, tampered, 10);
    assert.equal(a.sm.revision, b.sm.revision, 'same revisions');
    const raised = checkA.compare({ nodeId: 2, checkpoints: checkB.checkpoints });
    assert.ok(raised.length >= 1, 'a mismatch is raised');
    assert.equal(raised[0].peerNodeId, 2);
    assert.equal(checkA.compare({ nodeId: 2, checkpoints: checkB.checkpoints }).length, 0, 'raised once');
    assert.equal(checkA.alarms.length, raised.length);
    const alarmLines = lines.map((line) => JSON.parse(line) as { level: string; msg: string }).filter((line) => line.msg.startsWith('ALARM'));
    assert.equal(alarmLines.length, raised.length);
    assert.ok(alarmLines.every((line) => line.level === 'error'));
  } finally {
    await a.done();
    await b.done();
  }
});

/** A check whose state hashes every checkpoint to `hashes(revision)`: the voting, without an engine. */
async function checkWithHashes(nodeId: number, hashes: (revision: number) => string): Promise<ReplicaHashCheck> {
  const state = {
    revision: 30,
    compactedRevision: 0,
    hashAtRevisionAsync: (revision: number) => Promise.resolve({ revision, hash: hashes(revision) }),
  };
  const check = new ReplicaHashCheck({ nodeId, everyRevisions: 10, state, logger: silentLogger });
  for (let i = 0; i < 5; i++) {
    check.afterApply();
    for (let j = 0; j < 5; j++) await new Promise((resolve) => setImmediate(resolve));
  }
  assert.deepEqual(check.checkpoints.map((c) => c.revision), [10, 20, 30]);
  return check;
}

test('the hashes vote: the node outside a strict majority is the suspect, and only it is unhealthy', async () => {
  const good = (revision: number): string => (revision % 16).toString(16).repeat(64);
  const damaged = (revision: number): string => (revision >= 20 ? 'f' : (revision % 16).toString(16)).repeat(64);
  const [a, b, c] = await Promise.all([checkWithHashes(1, good), checkWithHashes(2, good), checkWithHashes(3, damaged)]);
  const peersOf = (self: number): { nodeId: number; checkpoints: readonly { revision: number; hash: string }[] }[] =>
    [[1, a], [2, b], [3, c]].filter(([id]) => id !== self).map(([id, check]) => ({ nodeId: id as number, checkpoints: (check as ReplicaHashCheck).checkpoints }));

  const seenByA = a.compareRound(peersOf(1));
  assert.deepEqual(seenByA.map((alarm) => [alarm.revision, alarm.peerNodeId, alarm.suspect]), [[20, 3, 3], [30, 3, 3]]);
  assert.equal(a.unhealthy, false, 'a node in the majority stays healthy');
  const seenByC = c.compareRound(peersOf(3));
  assert.ok(seenByC.length === 4 && seenByC.every((alarm) => alarm.suspect === 3));
  assert.equal(c.unhealthy, true, 'the outvoted node reports itself');

  // Only two nodes compared: nobody can tell which is damaged, so both are unhealthy ...
  const b2 = await checkWithHashes(2, good);
  assert.deepEqual(b2.compare({ nodeId: 3, checkpoints: c.checkpoints }).map((alarm) => alarm.suspect), [0, 0]);
  assert.equal(b2.unhealthy, true);
  // ... until a round in which the third node answers decides it.
  assert.deepEqual(b2.compareRound(peersOf(2)), [], 'nothing new to raise');
  assert.ok(b2.alarms.every((alarm) => alarm.suspect === 3));
  assert.equal(b2.unhealthy, false);
});
