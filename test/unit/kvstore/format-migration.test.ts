// Engine format 1 (a per-key revision index, re-created keys linked to nothing, no graves) is
// migrated to format 2 when it is opened, and answers every read, hash and count as before.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue } from '../../../src/codec/raft-codec.js';
import type { Logger } from '../../../src/common/logger.js';
import { DEFAULT_MAP_SIZE_BYTES, Engine } from '../../../src/kvstore/engine.js';
import { decodeHistory, readU64, u64Key, withPreviousRevision } from '../../../src/kvstore/encoding.js';
import { ENGINE_MAGIC } from '../../../src/kvstore/meta.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { StoreDirectory } from '../../../src/kvstore/store-directory.js';
import type { Entry } from '../../../src/raft/types.js';
import { LogBuilder, SeededRandom, tempDir } from './helpers.js';

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'missing'];

interface Observed {
  readonly reads: readonly string[];
  readonly hash: string;
  readonly hashAtRevision: string | null;
  readonly stats: ReturnType<KvStateMachine['stats']>;
  readonly count: number;
}

async function observe(sm: KvStateMachine): Promise<Observed> {
  const reads: string[] = [];
  for (let revision = Math.max(1, sm.compactedRevision); revision <= sm.revision; revision++) {
    for (const key of KEYS) {
      const kv = sm.get(key, revision).kv;
      reads.push(kv === null ? '-' : `${kv.value}|${kv.createRevision}|${kv.modRevision}|${kv.version}`);
    }
  }
  const middle = Math.max(sm.compactedRevision, Math.floor(sm.revision / 2));
  return { reads, hash: sm.hash().hash, hashAtRevision: (await sm.hashAtRevisionAsync(middle))?.hash ?? null, stats: sm.stats(), count: sm.count() };
}

/** Rewrite a format-2 engine the way format 1 stored the same state. */
async function downgradeToFormat1(path: string): Promise<void> {
  const { directory } = await StoreDirectory.open(path);
  const engine = Engine.open(directory.liveEngineDirectory, { mode: 'durable', mapSizeBytes: DEFAULT_MAP_SIZE_BYTES });
  try {
    const revisions = engine.legacyDb('revisions');
    engine.transact(() => {
      // Read out first: the loop rewrites history records.
      const records = [...engine.dbs.history.getRange()].map(({ key, value }) => ({ revision: readU64(key, 0), value: Buffer.from(value) }));
      for (const { revision, value } of records) {
        const record = decodeHistory(value);
        const indexKey = Buffer.concat([record.keyBytes, Buffer.from([0]), u64Key(revision)]);
        revisions.putSync(indexKey, Buffer.alloc(0));
        if (record.kind === 'put' && record.version === 1 && record.previousRevision > 0) engine.dbs.history.putSync(u64Key(revision), withPreviousRevision(value, 0));
      }
      engine.dbs.graves.clearSync();
      engine.dbs.meta.putSync(Buffer.from('schema'), Buffer.from(encodeValue({ magic: ENGINE_MAGIC, formatVersion: 1 })));
    });
  } finally {
    await engine.close();
  }
}

function randomHistory(random: SeededRandom, log: LogBuilder, changes: number): Entry[] {
  const entries: Entry[] = [];
  for (let i = 0; i < changes; i++) {
    const key = random.pick(KEYS.slice(0, -1));
    entries.push(random.chance(0.3) ? log.del(key) : log.put(key, `v${i}`));
  }
  return entries;
}

function capturingLogger(warnings: { msg: string; fields?: Record<string, unknown> }[]): Logger {
  const logger: Logger = {
    debug: () => {}, info: () => {}, error: () => {},
    warn: (msg, fields) => { warnings.push({ msg, fields }); },
    child: () => logger,
  };
  return logger;
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`a format-1 engine is migrated at open and answers as before (seed ${seed})`, async () => {
    const dir = tempDir();
    try {
      const random = new SeededRandom(seed);
      const log = new LogBuilder();
      const original = await KvStateMachine.open(dir.path);
      original.apply(randomHistory(random, log, 200));
      original.apply([log.compact(Math.floor(original.revision / 3))]);
      while (original.runMaintenance().compactionPending);
      original.apply(randomHistory(random, log, 100));
      const before = await observe(original);
      await original.close();

      await downgradeToFormat1(dir.path);
      const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
      const migrated = await KvStateMachine.open(dir.path, { logger: capturingLogger(warnings) });
      try {
        assert.deepEqual(await observe(migrated), before);
        const report = warnings.find((warning) => /migrated from format 1 to 2/.test(warning.msg));
        assert.ok(report !== undefined, 'the migration is logged');
        assert.equal(report.fields?.graves, before.stats.graves);
        assert.ok(Number(report.fields?.relinkedPuts) > 0, 'some re-created key was linked to its tombstone again');
        // Both continue the same way after the migration.
        migrated.apply([log.put('a', 'after'), log.del('b')]);
        assert.equal(migrated.get('a').kv?.value, 'after');
      } finally {
        await migrated.close();
      }
      // A second open finds format 2: nothing to migrate.
      const warningsAgain: { msg: string }[] = [];
      const reopened = await KvStateMachine.open(dir.path, { logger: capturingLogger(warningsAgain) });
      await reopened.close();
      assert.equal(warningsAgain.filter((warning) => /migrated/.test(warning.msg)).length, 0);
    } finally {
      dir.remove();
    }
  });
}
