// A crash in the middle of a write leaves a torn tail: the log must open, drop exactly the torn
// record, keep everything before it, and accept new writes that survive the next reopen.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/logger.js';
import type { Entry } from '../../../src/raft/types.js';
import { encodeSegmentHeader, segmentFileName } from '../../../src/storage/wal/format.js';
import { RaftLogStore } from '../../../src/storage/wal.js';
import { assertSameEntries, command, commands, hardState, recordingLogger, recordSpans, withTempDir } from './support.js';

// These tests cut and extend the file by hand at exact byte offsets: no preallocated zeros in the
// way (wal-preallocation.test.ts covers torn records over preallocated space).
const open = (directory: string) => RaftLogStore.open(directory, { logger: silentLogger, preallocateBytes: 0 });

test('a last batch cut at every byte offset: the torn record goes, the rest stays, and the log carries on', async () => {
  await withTempDir(async (directory) => {
    const first = await open(directory);
    await first.store.save({ hardState: hardState(1, 1, 2), entries: commands(1, 5, 1), snapshot: null });
    const cleanEnd = first.store.stats().bytes;
    await first.store.save({ hardState: hardState(2, 2, 5), entries: [command(6, 2, 30), command(7, 2, 30)], snapshot: null });
    await first.store.close();
    const [name] = await readdir(directory);
    const path = join(directory, name);
    const pristine = await readFile(path);
    const spans = recordSpans(pristine).filter((span) => span.start >= cleanEnd);
    assert.equal(spans.length, 3, 'entry 6, entry 7, hard state');
    assert.equal(spans[2].end, pristine.length);

    for (let cut = cleanEnd; cut < pristine.length; cut++) {
      await writeFile(path, pristine.subarray(0, cut));
      const complete = spans.filter((span) => span.end <= cut);
      const goodEnd = complete.length > 0 ? complete[complete.length - 1].end : cleanEnd;
      const expected: Entry[] = [...commands(1, 5, 1), ...[command(6, 2, 30), command(7, 2, 30)].slice(0, complete.length)];
      const logger = recordingLogger();
      const { store, recovered } = await RaftLogStore.open(directory, { logger, preallocateBytes: 0 });
      const context = `cut at byte ${cut}`;
      assertSameEntries(recovered.entries, expected, context);
      assert.deepEqual(recovered.hardState, hardState(1, 1, 2), context);
      assert.equal(recovered.tornBytesCut, cut - goodEnd, context);
      assert.equal((await stat(path)).size, goodEnd, `${context}: the torn bytes are cut off the file`);
      const warnings = logger.lines.filter((line) => line.level === 'warn');
      if (cut > goodEnd) assert.equal(warnings[0]?.fields.bytesCut, cut - goodEnd, `${context}: a warning with the byte count`);
      else assert.equal(warnings.length, 0, context);

      const next = command(expected.length + 1, 3, 8);
      await store.save({ hardState: hardState(3, 3, 5), entries: [next], snapshot: null });
      await store.close();
      const again = await open(directory);
      assertSameEntries(again.recovered.entries, [...expected, next], `${context}, after a save and a reopen`);
      assert.deepEqual(again.recovered.hardState, hardState(3, 3, 5), context);
      assert.equal(again.recovered.tornBytesCut, 0, context);
      await again.store.close();
    }
  });
});

test('garbage after the last record (space extended, data lost) is cut off; zeros end the segment and stay', async () => {
  for (const tail of [Buffer.alloc(4096), Buffer.from('this is not a record, just bytes the crash left behind')]) {
    await withTempDir(async (directory) => {
      const first = await open(directory);
      await first.store.save({ hardState: null, entries: commands(1, 3, 1), snapshot: null });
      await first.store.close();
      const [name] = await readdir(directory);
      const path = join(directory, name);
      const clean = await readFile(path);
      await writeFile(path, Buffer.concat([clean, tail]));
      const zeros = tail.every((byte) => byte === 0);
      const { store, recovered } = await open(directory);
      assertSameEntries(recovered.entries, commands(1, 3, 1));
      assert.equal(recovered.tornBytesCut, zeros ? 0 : tail.length);
      assert.equal((await stat(path)).size, clean.length + (zeros ? tail.length : 0));
      // The next record goes right after the last one, over the zeros if they are there.
      await store.save({ hardState: null, entries: [command(4, 1)], snapshot: null });
      await store.close();
      const again = await open(directory);
      assertSameEntries(again.recovered.entries, commands(1, 4, 1));
      assert.equal(again.recovered.tornBytesCut, 0);
      await again.store.close();
    });
  }
});

test('a segment whose creation a crash cut short is removed, and the previous one is active again', async () => {
  const fullHeader = encodeSegmentHeader(6);
  const leftovers = [Buffer.alloc(0), ...Array.from({ length: 23 }, (_, k) => fullHeader.subarray(0, k + 1)), Buffer.alloc(24)];
  for (const leftover of leftovers) {
    await withTempDir(async (directory) => {
      const first = await open(directory);
      await first.store.save({ hardState: hardState(1, 1, 0), entries: commands(1, 5, 1), snapshot: null });
      await first.store.close();
      const halfMade = join(directory, segmentFileName(2, 6));
      await writeFile(halfMade, leftover);
      const logger = recordingLogger();
      const { store, recovered } = await RaftLogStore.open(directory, { logger, preallocateBytes: 0 });
      const context = `a leftover of ${leftover.length} bytes`;
      assertSameEntries(recovered.entries, commands(1, 5, 1), context);
      assert.deepEqual(await readdir(directory), [segmentFileName(1, 1)], context);
      assert.ok(logger.lines.some((line) => line.level === 'warn' && line.fields.file === halfMade), context);
      await store.save({ hardState: null, entries: [command(6, 1)], snapshot: null });
      await store.close();
      const again = await open(directory);
      assertSameEntries(again.recovered.entries, commands(1, 6, 1), context);
      await again.store.close();
    });
  }
});
