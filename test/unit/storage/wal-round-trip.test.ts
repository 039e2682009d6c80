// What is saved comes back: entries, hard states, a suffix replaced by a truncating batch, a
// compaction point and a snapshot from the leader; and the bytes on disk are the documented format.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeEntry } from '../../../src/codec/raft-codec.js';
import { silentLogger } from '../../../src/common/logger.js';
import type { Entry } from '../../../src/raft/types.js';
import { RaftLogStore, StorageContractError } from '../../../src/storage/wal.js';
import { assertSameEntries, command, commands, hardState, MEMBERSHIP, snapshotAt, withTempDir } from './support.js';

const open = (directory: string) => RaftLogStore.open(directory, { logger: silentLogger });

test('a fresh directory opens empty', async () => {
  await withTempDir(async (directory) => {
    const { store, recovered } = await open(join(directory, 'wal'));
    assert.deepEqual(recovered.hardState, { term: 0, votedFor: 0, commitIndex: 0 });
    assert.equal(recovered.snapshot, null);
    assert.deepEqual(recovered.entries, []);
    assert.equal(recovered.tornBytesCut, 0);
    assert.deepEqual(store.stats(), { segments: 1, bytes: 24, firstIndex: 1, lastIndex: 0 });
    await store.close();
  });
});

test('entries, hard states, a replaced suffix and a compaction point come back exactly', async () => {
  await withTempDir(async (directory) => {
    const noop: Entry = { kind: 'noop', index: 11, term: 2 };
    const config: Entry = { kind: 'config', index: 12, term: 2, membership: MEMBERSHIP };
    {
      const { store } = await open(directory);
      await store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 10, 1), snapshot: null });
      await store.save({ hardState: hardState(2, 2, 5), entries: [noop, config], snapshot: null });
      // A new leader's entries conflict from index 8 on: the stored 8..12 are replaced.
      await store.save({ hardState: hardState(3, 0, 7), entries: commands(8, 9, 3), snapshot: null });
      await store.save({ hardState: null, entries: commands(10, 12, 3, 40), snapshot: null });
      await store.save({ hardState: hardState(3, 3, 9), entries: [], snapshot: null });
      await store.compact(snapshotAt(9, 3), 5);
      assert.equal(store.stats().firstIndex, 1);
      assert.equal(store.stats().lastIndex, 12);
      await store.close();
    }
    const { store, recovered } = await open(directory);
    assert.deepEqual(recovered.hardState, hardState(3, 3, 9));
    assert.deepEqual(recovered.snapshot, snapshotAt(9, 3));
    assertSameEntries(recovered.entries, [...commands(1, 7, 1), ...commands(8, 9, 3), ...commands(10, 12, 3, 40)]);
    assert.equal(recovered.tornBytesCut, 0);
    await store.close();
  });
});

test('a snapshot from the leader replaces the stored log', async () => {
  await withTempDir(async (directory) => {
    {
      const { store } = await open(directory);
      await store.save({ hardState: hardState(1, 1, 3), entries: commands(1, 5, 1), snapshot: null });
      await store.save({ hardState: hardState(4, 0, 20), entries: commands(21, 22, 4), snapshot: snapshotAt(20, 4) });
      assert.deepEqual({ ...store.stats(), bytes: 0 }, { segments: 1, bytes: 0, firstIndex: 21, lastIndex: 22 });
      await store.close();
    }
    {
      const { store, recovered } = await open(directory);
      assert.deepEqual(recovered.snapshot, snapshotAt(20, 4));
      assert.deepEqual(recovered.hardState, hardState(4, 0, 20));
      assertSameEntries(recovered.entries, commands(21, 22, 4));
      // A snapshot that leaves nothing after it: the log is empty and continues at 31.
      await store.save({ hardState: null, entries: [], snapshot: snapshotAt(30, 5) });
      await store.close();
    }
    const { store, recovered } = await open(directory);
    assert.deepEqual(recovered.snapshot, snapshotAt(30, 5));
    assert.deepEqual(recovered.entries, []);
    assert.equal(store.stats().lastIndex, 30);
    await store.save({ hardState: null, entries: [command(31, 5)], snapshot: null });
    await store.close();
  });
});

test('batches that break the log\'s rules are refused before anything is written', async () => {
  await withTempDir(async (directory) => {
    const { store } = await open(directory);
    await store.save({ hardState: hardState(2, 1, 0), entries: commands(1, 5, 2), snapshot: null });
    const sizeBefore = store.stats().bytes;
    const refusals = [
      { hardState: null, entries: commands(7, 8, 2), snapshot: null }, // a gap after 5
      { hardState: null, entries: [command(1, 2), command(3, 2)], snapshot: null }, // not contiguous
      { hardState: hardState(1, 1, 0), entries: [], snapshot: null }, // the term goes back
      { hardState: hardState(2, 3, 0), entries: [], snapshot: null }, // a second vote in term 2
    ];
    for (const batch of refusals) await assert.rejects(store.save(batch), StorageContractError);
    await store.compact(snapshotAt(4, 2), 4);
    await assert.rejects(store.save({ hardState: null, entries: commands(3, 6, 3), snapshot: null }), StorageContractError, 'truncating into the snapshot');
    await assert.rejects(store.compact(snapshotAt(3, 2), 3), StorageContractError, 'an older compaction point');
    await assert.rejects(store.compact(snapshotAt(5, 2), 6), StorageContractError, 'compactTo beyond the snapshot');
    await assert.rejects(store.compact(snapshotAt(9, 2), 2), StorageContractError, 'a compaction point beyond the log');
    await assert.rejects(store.compact(snapshotAt(5, 7), 2), StorageContractError, 'a compaction point whose term disagrees with the entry');
    assert.ok(store.stats().bytes > sizeBefore); // only the valid compaction record was added
    // The store still works after refusals.
    await store.save({ hardState: hardState(2, 1, 5), entries: [command(6, 2)], snapshot: null });
    await store.close();
    const reopened = await open(directory);
    assertSameEntries(reopened.recovered.entries, commands(1, 6, 2));
    assert.deepEqual(reopened.recovered.hardState, hardState(2, 1, 5));
    await reopened.store.close();
  });
});

test('the bytes on disk follow docs/storage-format.md', async () => {
  await withTempDir(async (directory) => {
    const { store } = await open(directory);
    const entry = command(1, 7, 5);
    await store.save({ hardState: null, entries: [entry], snapshot: null });
    await store.close();
    const names = await readdir(directory);
    assert.deepEqual(names, ['wal-000000000001-00000000000000000001.log']);
    const bytes = await readFile(join(directory, names[0]));
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x52, 0x4b, 0x56, 0x57, 0x41, 0x4c, 0x0a], 'magic');
    assert.equal(bytes.readUInt32LE(8), 1, 'format version, little-endian');
    assert.equal(bytes.readBigUInt64LE(12), 1n, 'first index');
    assert.equal(bytes.readUInt32LE(20), crc32(bytes.subarray(0, 20)), 'header checksum');
    const length = bytes.readUInt32LE(24);
    const end = 24 + 9 + length; // one record: length | checksum | type | payload
    assert.ok(bytes.length > end, 'space preallocated after the record');
    assert.ok(bytes.subarray(end).every((byte) => byte === 0), 'the preallocated space is zeros');
    assert.equal(bytes[32], 1, 'type 1 = entry');
    assert.equal(bytes.readUInt32LE(28), crc32(bytes.subarray(32, end)), 'checksum = zlib crc32 of type + payload');
    assertSameEntries([decodeEntry(bytes.subarray(33, end))], [entry]);
  });
});
