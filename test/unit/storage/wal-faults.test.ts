// A full disk is survivable: the failed write is undone, the store keeps working when space
// returns, and what was saved before survives. A failed fdatasync is not: that call and every later
// one fail with StorageFatalError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/logger.js';
import { DiskFullError, RaftLogStore, StorageFatalError } from '../../../src/storage/wal.js';
import { FaultyFileSystem } from './faulty-fs.js';
import { assertSameEntries, command, commands, hardState, snapshotAt, withTempDir } from './support.js';

async function fileSizes(directory: string): Promise<number[]> {
  const names = (await readdir(directory)).sort();
  return Promise.all(names.map(async (name) => (await stat(join(directory, name))).size));
}

test('ENOSPC mid-write: the partial write is cut off, the store works again when space returns', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem();
    // Without preallocated space: the write extends the file, so the disk can fill in the middle of it.
    const open = () => RaftLogStore.open(directory, { logger: silentLogger, fileSystem, preallocateBytes: 0 });
    const { store } = await open();
    await store.save({ hardState: hardState(1, 1, 2), entries: commands(1, 5, 1), snapshot: null });
    const statsBefore = store.stats();
    const sizesBefore = await fileSizes(directory);

    // Room for a few bytes only: the write stores a prefix, then fails.
    fileSystem.spaceLeftBytes = 30;
    await assert.rejects(store.save({ hardState: hardState(1, 1, 5), entries: commands(6, 9, 1, 50), snapshot: null }), DiskFullError);
    assert.deepEqual(store.stats(), statsBefore, 'the store did not move');
    assert.deepEqual(await fileSizes(directory), sizesBefore, 'the partial write was cut off the file');
    // Still full: refused again, still consistent.
    await assert.rejects(store.save({ hardState: null, entries: [command(6, 1)], snapshot: null }), DiskFullError);

    fileSystem.spaceLeftBytes = null;
    await store.save({ hardState: hardState(1, 1, 6), entries: commands(6, 7, 1, 8), snapshot: null });
    await store.close();

    const { store: reopened, recovered } = await open();
    assertSameEntries(recovered.entries, [...commands(1, 5, 1), ...commands(6, 7, 1, 8)]);
    assert.deepEqual(recovered.hardState, hardState(1, 1, 6));
    assert.equal(recovered.tornBytesCut, 0, 'no partial record was left behind');
    await reopened.close();
  });
});

test('ENOSPC while starting a new segment: the half-made file is removed and the old one stays active', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem();
    const open = () => RaftLogStore.open(directory, { logger: silentLogger, fileSystem, segmentSizeBytes: 100 });
    const { store } = await open();
    await store.save({ hardState: null, entries: commands(1, 5, 1, 20), snapshot: null });
    const namesBefore = await readdir(directory);
    fileSystem.spaceLeftBytes = 10; // less than a segment header
    await assert.rejects(store.save({ hardState: null, entries: [command(6, 1)], snapshot: null }), DiskFullError);
    assert.deepEqual(await readdir(directory), namesBefore);
    fileSystem.spaceLeftBytes = null;
    await store.save({ hardState: null, entries: [command(6, 1)], snapshot: null });
    assert.equal(store.stats().segments, 2);
    await store.close();
    const { store: reopened, recovered } = await open();
    assertSameEntries(recovered.entries, [...commands(1, 5, 1, 20), command(6, 1)]);
    await reopened.close();
  });
});

test('EIO on fdatasync: this call and every later one fail with StorageFatalError', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem();
    const { store } = await RaftLogStore.open(directory, { logger: silentLogger, fileSystem });
    await store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 3, 1), snapshot: null });
    fileSystem.failDatasync = true;
    await assert.rejects(store.save({ hardState: null, entries: [command(4, 1)], snapshot: null }), (error: unknown) => error instanceof StorageFatalError && /fdatasync/.test(error.message));
    // The disk "recovers", but the page cache can no longer be trusted: the store stays failed.
    fileSystem.failDatasync = false;
    await assert.rejects(store.save({ hardState: null, entries: [command(4, 1)], snapshot: null }), StorageFatalError);
    await assert.rejects(store.save({ hardState: hardState(2, 0, 0), entries: [], snapshot: null }), StorageFatalError);
    await assert.rejects(store.compact(snapshotAt(2, 1), 2), StorageFatalError);
    await store.close();
  });
});

test('concurrent calls are serialized in call order', async () => {
  await withTempDir(async (directory) => {
    const { store } = await RaftLogStore.open(directory, { logger: silentLogger });
    // Not awaited one by one: the store must still apply them in order.
    await Promise.all([
      store.save({ hardState: null, entries: commands(1, 3, 1), snapshot: null }),
      store.save({ hardState: null, entries: commands(4, 6, 1), snapshot: null }),
      store.save({ hardState: hardState(1, 0, 6), entries: commands(7, 9, 1), snapshot: null }),
    ]);
    await store.close();
    const { store: reopened, recovered } = await RaftLogStore.open(directory, { logger: silentLogger });
    assertSameEntries(recovered.entries, commands(1, 9, 1));
    await reopened.close();
  });
});
