// Zeros preallocated ahead of the last record (preallocation.ts): records are written over them, a
// reopen reads the zeros as the end of the segment (in any segment), a torn record over them is
// still cut off, a record after a stretch of zeros is still damage, and a fill that fails is either
// given up (full disk) or fails the store (a failed fdatasync).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/logger.js';
import { StorageFatalError } from '../../../src/storage/errors.js';
import { RaftLogStore } from '../../../src/storage/wal.js';
import { FaultyFileSystem } from './faulty-fs.js';
import { assertSameEntries, command, commands, hardState, recordingLogger, recordSpans, withTempDir } from './support.js';

const LEAD = 64 * 1024;

async function onlySegment(directory: string): Promise<string> {
  const names = (await readdir(directory)).filter((name) => name.endsWith('.log'));
  assert.equal(names.length, 1);
  return join(directory, names[0]);
}

test('records go over preallocated zeros: the file does not grow, and a reopen finds every record and no torn tail', async () => {
  await withTempDir(async (directory) => {
    const first = await RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: LEAD });
    await first.store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 3, 1), snapshot: null });
    await first.store.close();
    const path = await onlySegment(directory);
    const size = (await stat(path)).size;
    assert.ok(size > first.store.stats().bytes, `zeros ahead of the records: file ${size} bytes, records ${first.store.stats().bytes}`);

    const logger = recordingLogger();
    const second = await RaftLogStore.open(directory, { logger, preallocateBytes: LEAD });
    assertSameEntries(second.recovered.entries, commands(1, 3, 1));
    assert.equal(second.recovered.tornBytesCut, 0);
    assert.deepEqual(logger.lines.filter((line) => line.level === 'warn'), []);
    for (let index = 4; index <= 40; index++) await second.store.save({ hardState: hardState(1, 1, index - 1), entries: [command(index, 1, 100)], snapshot: null });
    const written = second.store.stats().bytes;
    await second.store.close();
    assert.ok(written < size, 'the new records fit in the preallocated space');
    assert.equal((await stat(path)).size, size, 'written over the zeros, not appended');

    const third = await RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: LEAD });
    assert.deepEqual(third.recovered.entries.map((entry) => entry.index), commands(1, 40, 1).map((entry) => entry.index));
    assert.deepEqual(third.recovered.hardState, hardState(1, 1, 39));
    await third.store.close();
  });
});

test('a torn record over preallocated zeros is cut off; a record after a stretch of zeros is damage', async () => {
  await withTempDir(async (directory) => {
    const first = await RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: LEAD });
    await first.store.save({ hardState: null, entries: commands(1, 3, 1), snapshot: null });
    const cleanEnd = first.store.stats().bytes;
    await first.store.save({ hardState: null, entries: [command(4, 1, 40)], snapshot: null });
    await first.store.close();
    const path = await onlySegment(directory);
    const pristine = await readFile(path);
    const [last] = recordSpans(pristine.subarray(0, first.store.stats().bytes)).filter((span) => span.start >= cleanEnd);

    // Torn: only a prefix of the last record reached the disk, zeros after it.
    for (const kept of [1, 9, last.end - last.start - 1]) {
      const torn = Buffer.from(pristine);
      torn.fill(0, last.start + kept, last.end);
      await writeFile(path, torn);
      const { store, recovered } = await RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: LEAD });
      assertSameEntries(recovered.entries, commands(1, 3, 1), `${kept} bytes of the record kept`);
      assert.ok(recovered.tornBytesCut > 0);
      await store.save({ hardState: null, entries: [command(4, 2)], snapshot: null });
      await store.close();
      const again = await RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: LEAD });
      assert.deepEqual(again.recovered.entries.map((entry) => entry.term), [1, 1, 1, 2]);
      await again.store.close();
      await writeFile(path, pristine);
    }

    // A hole: the third record lost (zeros), the fourth intact after it. Not a torn tail.
    const spans = recordSpans(pristine.subarray(0, first.store.stats().bytes));
    const holed = Buffer.from(pristine);
    holed.fill(0, spans[2].start, spans[2].end);
    await writeFile(path, holed);
    await assert.rejects(RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: LEAD }), StorageFatalError);
  });
});

test('segments other than the last may end in preallocated zeros', async () => {
  await withTempDir(async (directory) => {
    const open = () => RaftLogStore.open(directory, { logger: silentLogger, segmentSizeBytes: 8 * 1024, preallocateBytes: 4 * 1024 });
    const { store } = await open();
    for (let index = 1; index <= 200; index++) await store.save({ hardState: null, entries: [command(index, 1, 200)], snapshot: null });
    await store.close();
    const names = (await readdir(directory)).filter((name) => name.endsWith('.log')).sort();
    assert.ok(names.length >= 3, `${names.length} segments`);
    // A segment rotates once its records pass the size, usually past its zeros too: leave some.
    const firstPath = join(directory, names[0]);
    await writeFile(firstPath, Buffer.concat([await readFile(firstPath), Buffer.alloc(3000)]));
    const reopened = await open();
    assertSameEntries(reopened.recovered.entries, commands(1, 200, 1, 200));
    assert.equal(reopened.recovered.tornBytesCut, 0);
    await reopened.store.close();
  });
});

test('a fill that finds the disk full is given up with a warning; the store goes on appending', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem();
    fileSystem.spaceLeftBytes = 1_000;
    const logger = recordingLogger();
    // The open starts a fill at once; it uses up the space and fails.
    const { store } = await RaftLogStore.open(directory, { logger, fileSystem, preallocateBytes: LEAD });
    await store.save({ hardState: null, entries: [command(1, 1)], snapshot: null }).catch(() => {});
    assert.ok(logger.lines.some((line) => line.level === 'warn' && line.msg.includes('preallocated')), 'a warning says preallocation stopped');
    fileSystem.spaceLeftBytes = null;
    await store.save({ hardState: null, entries: [command(1, 1)], snapshot: null });
    await store.save({ hardState: null, entries: commands(2, 5, 1), snapshot: null });
    await store.close();
    const again = await RaftLogStore.open(directory, { logger: silentLogger, fileSystem, preallocateBytes: LEAD });
    assertSameEntries(again.recovered.entries, commands(1, 5, 1));
    await again.store.close();
  });
});

test('a fill whose fdatasync fails stops the store: nothing is written after it', async () => {
  await withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem();
    const first = await RaftLogStore.open(directory, { logger: silentLogger, fileSystem, preallocateBytes: 0 });
    await first.store.save({ hardState: null, entries: [command(1, 1)], snapshot: null });
    await first.store.close();
    fileSystem.failDatasync = true;
    // The reopen starts a fill at once; the save waits for it (it writes where the fill does).
    const { store } = await RaftLogStore.open(directory, { logger: silentLogger, fileSystem, preallocateBytes: LEAD });
    await assert.rejects(store.save({ hardState: null, entries: [command(2, 1)], snapshot: null }), (error: Error) => error instanceof StorageFatalError && error.message.includes('preallocating'));
    fileSystem.failDatasync = false;
    await assert.rejects(store.save({ hardState: null, entries: [command(2, 1)], snapshot: null }), StorageFatalError);
    await store.close().catch(() => {});
    const again = await RaftLogStore.open(directory, { logger: silentLogger, fileSystem, preallocateBytes: 0 });
    assertSameEntries(again.recovered.entries, [command(1, 1)]);
    await again.store.close();
  });
});
