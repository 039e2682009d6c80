// Property test: a random log of puts, deletes, compactions, duplicate and stale stamps, garbage
// and noops, with a seeded generator. Applied three ways - from scratch in random batches; up to a
// random point, then exported, imported elsewhere and continued there; and in a plain in-memory
// model - it must give the same result for every entry, the same hash, and the same answer to
// get() for every key at every revision that is not compacted.
//
// Seeds: KV_PROPERTY_SEEDS=<count> (default 12), or KV_PROPERTY_SEED=<seed> to replay one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue } from '../../../src/codec/raft-codec.js';
import type { ClientStamp } from '../../../src/kvstore/commands.js';
import { CHECKPOINT_EVERY_VERSIONS } from '../../../src/kvstore/encoding.js';
import { SESSION_IDLE_MS_MAX } from '../../../src/kvstore/sessions.js';
import type { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { freshMachine, LogBuilder, SeededRandom } from './helpers.js';
import { comparable, ReferenceModel } from './reference-model.js';

const KEYS = ['a', 'b', 'c', 'dir/1', 'dir/2', 'dir/10', 'é', '🔑', 'k'.repeat(1024), 'z'];
const VALUES = ['', 'x', 'value', 'ünïcödé 🎉', 'v'.repeat(3000)];

interface Client {
  readonly id: string;
  nextSeq: number;
  ackedSeq: number;
  readonly sent: { stamp: ClientStamp; key: string; op: 'put' | 'delete' }[];
}

function generateLog(random: SeededRandom, length: number): Entry[] {
  const log = new LogBuilder(1, 3);
  const clients: Client[] = ['alpha', 'beta', 'gamma', 'delta'].map((id) => ({ id, nextSeq: 1, ackedSeq: 0, sent: [] }));
  let clock = 1_700_000_000_000;
  // The generator tracks the revision only roughly (for choosing compaction points); the model decides.
  let approxRevision = 1;
  let lastCompaction = 0;
  for (let i = 0; i < length; i++) {
    clock += random.int(5_000);
    if (random.chance(0.01)) clock += SESSION_IDLE_MS_MAX + 1; // idle clients expire
    const proposedAtMs = random.chance(0.03) ? clock - random.int(60_000) : clock; // a lagging leader
    const roll = random.next();
    if (roll < 0.03) {
      log.noop();
    } else if (roll < 0.04) {
      log.raw(random.chance(0.5) ? new Uint8Array([random.int(256), random.int(256)]) : encodeValue({ v: random.chance(0.5) ? 2 : 1, op: 'future-op', proposedAtMs }));
    } else if (roll < 0.08) {
      // Compact somewhere plausible, sometimes at an invalid revision on purpose.
      const target = random.chance(0.15) ? random.int(approxRevision + 5) + 1 : lastCompaction + 1 + random.int(Math.max(1, approxRevision - lastCompaction));
      lastCompaction = Math.max(lastCompaction, Math.min(target, approxRevision));
      log.compact(target, proposedAtMs);
    } else if (roll < 0.16) {
      // Retry an earlier stamped write of some client: a duplicate, or stale if acknowledged.
      const client = random.pick(clients);
      if (client.sent.length === 0) {
        log.noop();
      } else {
        const earlier = random.pick(client.sent.slice(-40));
        if (earlier.op === 'put') log.put(earlier.key, random.pick(VALUES), proposedAtMs, earlier.stamp);
        else log.del(earlier.key, proposedAtMs, earlier.stamp);
      }
    } else {
      const key = random.pick(KEYS);
      const op: 'put' | 'delete' = random.chance(0.25) ? 'delete' : 'put';
      let stamp: ClientStamp | undefined;
      if (random.chance(0.6)) {
        const client = random.pick(clients);
        const seq = client.nextSeq++;
        // Acknowledge some of what was answered; one client never acknowledges (its bound matters).
        if (client.id !== 'delta' && random.chance(0.5)) client.ackedSeq = Math.max(client.ackedSeq, seq - 1 - random.int(5));
        stamp = { clientId: client.id, seq, ackedSeq: client.ackedSeq };
        client.sent.push({ stamp, key, op });
      }
      if (op === 'put') log.put(key, random.pick(VALUES), proposedAtMs, stamp);
      else log.del(key, proposedAtMs, stamp);
      approxRevision += 1;
    }
  }
  return log.entries;
}

/** Apply entries in random batch sizes; returns every result keyed by index. */
function applyInBatches(sm: KvStateMachine, entries: readonly Entry[], random: SeededRandom): Map<number, unknown> {
  const results = new Map<number, unknown>();
  for (let start = 0; start < entries.length;) {
    const size = 1 + random.int(random.chance(0.2) ? 200 : 20);
    for (const [index, result] of sm.apply(entries.slice(start, start + size))) results.set(index, comparable(result));
    start += size;
  }
  return results;
}

function readOutcome(read: () => unknown): unknown {
  try {
    return read();
  } catch (error) {
    return { error: (error as { code?: unknown }).code };
  }
}

function assertSameAnswers(label: string, sm: KvStateMachine, model: ReferenceModel): void {
  assert.equal(sm.revision, model.revision, `${label}: revision`);
  assert.equal(sm.compactedRevision, model.compactedRevision, `${label}: compacted revision`);
  assert.equal(sm.appliedIndex, model.appliedIndex, `${label}: applied index`);
  assert.equal(sm.count(), model.liveKeys, `${label}: live keys`);
  for (const key of KEYS) {
    assert.deepEqual(sm.get(key).kv, model.get(key), `${label}: ${key.slice(0, 10)} now`);
    // Every readable revision, plus one on each side to check the errors.
    for (let revision = Math.max(1, model.compactedRevision - 1); revision <= model.revision + 1; revision++) {
      assert.deepEqual(readOutcome(() => sm.get(key, revision).kv), readOutcome(() => model.get(key, revision)), `${label}: ${key.slice(0, 10)} at ${revision}`);
    }
  }
}

async function runSeed(seed: number): Promise<void> {
  const random = new SeededRandom(seed);
  const entries = generateLog(random, 600 + random.int(900));
  const model = new ReferenceModel();
  const expected = new Map<number, unknown>();
  for (const entry of entries) {
    const result = model.apply(entry);
    if (result !== undefined) expected.set(entry.index, comparable(result));
  }

  // Logic only: the engine's flush mode changes nothing here, and a shared disk can be slow.
  const scratch = await freshMachine({ unsafeNoSync: true });
  const before = await freshMachine({ unsafeNoSync: true });
  const after = await freshMachine({ unsafeNoSync: true });
  try {
    // 1. From scratch.
    const scratchResults = applyInBatches(scratch.sm, entries, random);
    assert.deepEqual(scratchResults, expected, `seed ${seed}: results from scratch`);
    assertSameAnswers(`seed ${seed} scratch`, scratch.sm, model);

    // 2. Up to a random point, snapshot, install elsewhere (over some other state), continue there
    //    with a replayed overlap that must be skipped.
    const point = random.int(entries.length + 1);
    applyInBatches(before.sm, entries.slice(0, point), random);
    after.sm.apply([new LogBuilder().put('unrelated', 'state that the snapshot replaces')]);
    await after.sm.importSnapshot(before.sm.exportSnapshot().chunks);
    const overlap = Math.min(point, random.int(30));
    const continued = applyInBatches(after.sm, entries.slice(point - overlap), random);
    for (const [index, result] of continued) assert.deepEqual(result, expected.get(index), `seed ${seed}: result of entry ${index} after a snapshot at ${point}`);
    assert.equal(continued.size, [...expected.keys()].filter((index) => index > point).length, `seed ${seed}: only entries after the snapshot applied`);
    assertSameAnswers(`seed ${seed} snapshot at ${point}`, after.sm, model);
    assert.deepEqual(after.sm.hash(), scratch.sm.hash(), `seed ${seed}: hash after a snapshot at ${point}`);

    // 3. Physical compaction, finished, changes no answer.
    while (scratch.sm.runMaintenance().compactionPending);
    assertSameAnswers(`seed ${seed} after maintenance`, scratch.sm, model);
    const stats = scratch.sm.stats();
    assert.equal(stats.historyRecords, model.retainedChanges(), `seed ${seed}: history holds exactly what compaction must keep`);
    assert.equal(stats.graves, model.gravesRetained(), `seed ${seed}: a grave per deleted key whose tombstone compaction must keep`);
    assert.equal(stats.checkpoints, model.retainedCheckpoints(CHECKPOINT_EVERY_VERSIONS), `seed ${seed}: a checkpoint per retained tombstone and 64th version`);
    assert.deepEqual(after.sm.hash(), scratch.sm.hash());
  } finally {
    await scratch.done();
    await before.done();
    await after.done();
  }
}

const single = process.env.KV_PROPERTY_SEED;
const seeds = single !== undefined ? [Number(single)] : Array.from({ length: Number(process.env.KV_PROPERTY_SEEDS ?? 12) }, (_, i) => 1000 + i * 7919);

for (const seed of seeds) {
  test(`random log, seed ${seed}: scratch = snapshot + rest = reference model (replay: KV_PROPERTY_SEED=${seed})`, async () => {
    await runSeed(seed);
  });
}
