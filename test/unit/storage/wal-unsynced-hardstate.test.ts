// save({ sync: false }): a hard state that only moves the commit index is written without an
// fdatasync (etcd's MustSync rule). Power loss may take it (recovery then has the last synced hard
// state) or tear it (cut off as a torn tail); the next synced save makes it durable; a segment that
// holds one is synced before the log rotates away from it, since only the last segment may end
// torn; and entries or snapshots are refused without a sync.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/logger.js';
import { RaftLogStore, StorageContractError } from '../../../src/storage/wal.js';
import { FaultyFileSystem, withoutRealSyncs } from './faulty-fs.js';
import { commands, hardState, snapshotAt, TestRng, withTempDir } from './support.js';

test('an unsynced commit index is lost by a crash, kept by the next synced save', async () => {
  await withTempDir(async (directory) => {
    for (const tornWrites of [false, true]) {
      const fileSystem = new FaultyFileSystem(withoutRealSyncs());
      const dir = `${directory}/torn-${tornWrites}`;
      let { store } = await RaftLogStore.open(dir, { fileSystem, logger: silentLogger });
      await store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 5, 1), snapshot: null });
      const syncsBefore = fileSystem.counts.datasyncs;
      await store.save({ hardState: hardState(1, 1, 5), entries: [], snapshot: null }, { sync: false });
      assert.equal(fileSystem.counts.datasyncs, syncsBefore, 'no fdatasync for a commit-only hard state');
      await fileSystem.crash(new TestRng(7), { tornWrites });
      const first = await RaftLogStore.open(dir, { fileSystem, logger: silentLogger });
      assert.deepEqual(first.recovered.hardState, hardState(1, 1, 0), 'the unsynced commit index is gone, the synced state is whole');
      assert.equal(first.recovered.entries.length, 5);
      store = first.store;
      // Unsynced, then a synced save of entries: both are durable.
      await store.save({ hardState: hardState(1, 1, 5), entries: [], snapshot: null }, { sync: false });
      await store.save({ hardState: null, entries: commands(6, 6, 1), snapshot: null });
      await fileSystem.crash(new TestRng(8), { tornWrites });
      const second = await RaftLogStore.open(dir, { fileSystem, logger: silentLogger });
      assert.deepEqual(second.recovered.hardState, hardState(1, 1, 5));
      assert.equal(second.recovered.entries.length, 6);
      await second.store.close();
    }
  });
});

test('at most one write stays unsynced: a second commit-only hard state syncs both', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem(withoutRealSyncs());
    const { store } = await RaftLogStore.open(directory, { fileSystem, logger: silentLogger });
    await store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 5, 1), snapshot: null });
    const syncs = fileSystem.counts.datasyncs;
    await store.save({ hardState: hardState(1, 1, 3), entries: [], snapshot: null }, { sync: false });
    assert.equal(fileSystem.counts.datasyncs, syncs, 'the first one is not synced');
    // Two unsynced records could reach the disk out of order (the second without the first), and
    // recovery would call the hole damage: so the second one is synced, covering both.
    await store.save({ hardState: hardState(1, 1, 5), entries: [], snapshot: null }, { sync: false });
    assert.equal(fileSystem.counts.datasyncs, syncs + 1, 'the second one syncs');
    await store.save({ hardState: hardState(1, 1, 5), entries: [], snapshot: null }, { sync: false });
    assert.equal(fileSystem.counts.datasyncs, syncs + 1, 'after a sync, one may stay unsynced again');
    await store.close();
  });
});

test('a segment holding an unsynced hard state is synced before the log rotates away from it', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem(withoutRealSyncs());
    const options = { fileSystem, logger: silentLogger, segmentSizeBytes: 400 };
    const { store } = await RaftLogStore.open(directory, options);
    let index = 1;
    // Alternate entries (synced) and commit-only hard states (unsynced) across several rotations,
    // ending on an unsynced one each time the next save rotates.
    for (let round = 0; round < 12; round++) {
      await store.save({ hardState: null, entries: commands(index, index + 2, 1, 64), snapshot: null });
      index += 3;
      await store.save({ hardState: hardState(1, 1, index - 1), entries: [], snapshot: null }, { sync: false });
    }
    assert.ok(store.stats().segments > 3, `the test must rotate several times (${store.stats().segments} segments)`);
    // Power loss keeping torn prefixes of whatever was unsynced: every segment but the last must
    // still read back whole, or recovery would stop the node for "damage".
    await fileSystem.crash(new TestRng(3), { tornWrites: true });
    const reopened = await RaftLogStore.open(directory, options);
    assert.equal(reopened.recovered.entries.length, index - 1);
    assert.ok(reopened.recovered.hardState.commitIndex >= index - 4, 'every commit index before the last one was synced by a later save');
    await reopened.store.close();
  });
});

test('entries and snapshots are never written without a sync', async () => {
  await withTempDir(async (directory) => {
    const { store } = await RaftLogStore.open(directory, { fileSystem: withoutRealSyncs(), logger: silentLogger });
    assert.throws(() => store.save({ hardState: null, entries: commands(1, 1, 1), snapshot: null }, { sync: false }), StorageContractError);
    assert.throws(() => store.save({ hardState: null, entries: [], snapshot: snapshotAt(5, 1) }, { sync: false }), StorageContractError);
    await store.close();
  });
});
