// Segments rotate at their size limit; compaction deletes exactly the whole segments at or below the
// compaction point, never the active one, and a reopen sees the snapshot, the hard state and the rest.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { silentLogger } from '../../../src/common/logger.js';
import { parseSegmentFileName } from '../../../src/storage/wal/format.js';
import { RaftLogStore } from '../../../src/storage/wal.js';
import { assertSameEntries, command, commands, hardState, snapshotAt, withTempDir } from './support.js';

interface SegmentSpan {
  readonly name: string;
  readonly firstIndex: number;
  readonly lastIndex: number;
}

/** The segments on disk and the entries each holds (a log written without truncations). */
async function segmentSpans(directory: string, lastIndex: number): Promise<SegmentSpan[]> {
  const names = (await readdir(directory)).sort();
  return names.map((name, k) => {
    const parsed = parseSegmentFileName(name);
    const next = k + 1 < names.length ? parseSegmentFileName(names[k + 1]) : null;
    assert.ok(parsed !== null);
    return { name, firstIndex: parsed.firstIndex, lastIndex: next === null ? lastIndex : next.firstIndex - 1 };
  });
}

test('segments rotate at the size limit and are named by sequence and first index', async () => {
  await withTempDir(async (directory) => {
    const { store } = await RaftLogStore.open(directory, { logger: silentLogger, segmentSizeBytes: 512 });
    for (let index = 1; index <= 100; index++) await store.save({ hardState: null, entries: [command(index, 1, 40)], snapshot: null });
    const spans = await segmentSpans(directory, 100);
    assert.ok(spans.length >= 8, `${spans.length} segments`);
    assert.equal(store.stats().segments, spans.length);
    spans.forEach((span, k) => {
      assert.equal(parseSegmentFileName(span.name)?.sequence, k + 1);
      assert.ok(span.lastIndex >= span.firstIndex, `${span.name} holds entries`);
    });
    // No segment grows past the limit by more than the one batch that crossed it.
    assert.ok(store.stats().bytes <= spans.length * (512 + 100));
    await store.close();
  });
});

test('compact(meta, i) deletes exactly the segments wholly at or below i, and a reopen agrees', async () => {
  await withTempDir(async (directory) => {
    const open = () => RaftLogStore.open(directory, { logger: silentLogger, segmentSizeBytes: 512 });
    const { store } = await open();
    // The only hard state is written first, into the first segment, which compaction will delete.
    await store.save({ hardState: hardState(1, 1, 3), entries: commands(1, 3, 1, 40), snapshot: null });
    for (let index = 4; index <= 100; index++) await store.save({ hardState: null, entries: [command(index, 1, 40)], snapshot: null });
    const before = await segmentSpans(directory, 100);
    const compactTo = 57;
    const kept = before.filter((span, k) => k === before.length - 1 || span.lastIndex > compactTo);
    assert.ok(kept.length < before.length && kept.length > 1, 'the test needs segments on both sides of the point');

    await store.compact(snapshotAt(60, 1), compactTo);
    assert.deepEqual((await readdir(directory)).sort(), kept.map((span) => span.name));
    assert.equal(store.stats().segments, kept.length);
    assert.equal(store.stats().firstIndex, kept[0].firstIndex);
    assert.equal(store.stats().lastIndex, 100);
    await store.close();

    {
      const { store: reopened, recovered } = await open();
      assert.deepEqual(recovered.snapshot, snapshotAt(60, 1));
      assert.deepEqual(recovered.hardState, hardState(1, 1, 3), 'the hard state outlives the segment that held it');
      assertSameEntries(recovered.entries, commands(kept[0].firstIndex, 100, 1, 40));
      assert.ok(recovered.entries[0].index <= compactTo + 1);

      // Compacting everything leaves the active segment alone.
      await reopened.compact(snapshotAt(100, 1), 100);
      const left = await readdir(directory);
      assert.equal(left.length, 1);
      assert.equal(reopened.stats().segments, 1);
      await reopened.save({ hardState: hardState(2, 2, 100), entries: commands(101, 102, 2), snapshot: null });
      await reopened.close();
    }
    const { store: last, recovered } = await open();
    assert.deepEqual(recovered.snapshot, snapshotAt(100, 1));
    assert.deepEqual(recovered.hardState, hardState(2, 2, 100));
    assert.equal(recovered.entries[recovered.entries.length - 1].index, 102);
    assert.ok(recovered.entries[0].index <= 101);
    await last.close();
  });
});

test('a truncation written after a segment boundary survives the deletion of the segments before it', async () => {
  await withTempDir(async (directory) => {
    // A tiny limit: every batch starts a segment of its own.
    const open = () => RaftLogStore.open(directory, { logger: silentLogger, segmentSizeBytes: 25 });
    const { store } = await open();
    await store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 10, 1), snapshot: null });
    await store.save({ hardState: null, entries: commands(11, 20, 1), snapshot: null });
    // Starts at index 21 by its header, then cuts the log back to 17 and rewrites from 18.
    await store.save({ hardState: hardState(2, 2, 17), entries: commands(18, 25, 2), snapshot: null });
    await store.compact(snapshotAt(20, 2), 20);
    assert.equal(store.stats().firstIndex, 18);
    await store.close();
    const { store: reopened, recovered } = await open();
    assert.deepEqual(recovered.snapshot, snapshotAt(20, 2));
    assertSameEntries(recovered.entries, commands(18, 25, 2));
    assert.deepEqual(recovered.hardState, hardState(2, 2, 17));
    await reopened.close();
  });
});
