// Damage anywhere but a torn tail stops the node: every flipped byte of an earlier record or of a
// segment header, entries out of order, a missing segment. The error names the file and the byte.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/logger.js';
import { encodeSegmentHeader, segmentFileName } from '../../../src/storage/wal/format.js';
import { encodeRecords } from '../../../src/storage/wal/records.js';
import { RaftLogStore, StorageFatalError } from '../../../src/storage/wal.js';
import { command, commands, hardState, recordSpans, snapshotAt, withTempDir } from './support.js';

const SEGMENT_SIZE_BYTES = 600;
const open = (directory: string) => RaftLogStore.open(directory, { logger: silentLogger, segmentSizeBytes: SEGMENT_SIZE_BYTES });

/** A log of a few segments, each holding several records. Returns the segment names in order. */
async function buildLog(directory: string): Promise<string[]> {
  const { store } = await open(directory);
  for (let index = 1; index <= 30; index++) {
    await store.save({ hardState: index % 5 === 0 ? hardState(1, 1, index - 1) : null, entries: [command(index, 1, 24)], snapshot: null });
  }
  await store.close();
  const names = (await readdir(directory)).sort();
  assert.ok(names.length >= 3, `expected several segments, got ${names.length}`);
  return names;
}

async function expectFatal(directory: string, file: string, offset: number, context: string): Promise<void> {
  await assert.rejects(open(directory), (error: unknown) => {
    assert.ok(error instanceof StorageFatalError, `${context}: ${String(error)}`);
    assert.ok(error.message.includes(file), `${context}: the message names the file: ${error.message}`);
    assert.ok(error.message.includes(`byte ${offset}:`), `${context}: the message names byte ${offset}: ${error.message}`);
    return true;
  });
}

test('a flipped byte anywhere in an earlier record is fatal, naming the file and the record\'s offset', async () => {
  await withTempDir(async (directory) => {
    const names = await buildLog(directory);
    // An earlier record of the last segment (records follow it), and the last record of a segment
    // that is not the last one (a torn tail is only possible at the very end of the log).
    const last = names[names.length - 1];
    const middle = names[1];
    for (const [name, pick] of [[last, 'second'], [middle, 'last']] as const) {
      const path = join(directory, name);
      const pristine = await readFile(path);
      const spans = recordSpans(pristine);
      const span = pick === 'second' ? spans[1] : spans[spans.length - 1];
      assert.ok(span !== undefined && (pick === 'last' || spans.length > 2));
      for (let at = span.start; at < span.end; at++) {
        const damaged = Buffer.from(pristine);
        damaged[at] ^= 0xff;
        await writeFile(path, damaged);
        await expectFatal(directory, name, span.start, `${name}, byte ${at} flipped`);
      }
      await writeFile(path, pristine);
    }
    const { store } = await open(directory);
    await store.close();
  });
});

test('a flipped byte in a segment header is fatal, naming the file and the field', async () => {
  await withTempDir(async (directory) => {
    const names = await buildLog(directory);
    for (const name of [names[0], names[names.length - 1]]) {
      const path = join(directory, name);
      const pristine = await readFile(path);
      for (let at = 0; at < 24; at++) {
        const damaged = Buffer.from(pristine);
        damaged[at] ^= 0x01;
        await writeFile(path, damaged);
        // magic at 0, version at 8; a changed first index is caught by the header checksum at 20.
        const field = at < 8 ? 0 : at < 12 ? 8 : 20;
        await expectFatal(directory, name, field, `${name}, header byte ${at} flipped`);
      }
      await writeFile(path, pristine);
    }
  });
});

test('entries out of order are fatal even with good checksums', async () => {
  await withTempDir(async (directory) => {
    const name = segmentFileName(1, 1);
    const records = encodeRecords([1, 2, 4].map((index) => ({ type: 'entry' as const, entry: command(index, 1) })));
    await writeFile(join(directory, name), Buffer.concat([encodeSegmentHeader(1), records]));
    const spans = recordSpans(await readFile(join(directory, name)));
    await expectFatal(directory, name, spans[2].start, 'entry 4 after entry 2');
  });
});

test('a segment whose header disagrees with its name, or with the end of the previous segment, is fatal', async () => {
  await withTempDir(async (directory) => {
    const records = encodeRecords(commands(1, 3, 1).map((entry) => ({ type: 'entry' as const, entry })));
    await writeFile(join(directory, segmentFileName(1, 1)), Buffer.concat([encodeSegmentHeader(1), records]));
    await writeFile(join(directory, segmentFileName(2, 4)), encodeSegmentHeader(5));
    await expectFatal(directory, segmentFileName(2, 4), 12, 'header says 5, name says 4');
    await unlink(join(directory, segmentFileName(2, 4)));
    await writeFile(join(directory, segmentFileName(2, 6)), encodeSegmentHeader(6));
    await expectFatal(directory, segmentFileName(2, 6), 12, 'the previous segment ends at 3');
  });
});

test('a missing segment is fatal: in the middle, or at the start without a snapshot to cover it', async () => {
  await withTempDir(async (directory) => {
    const names = await buildLog(directory);
    const middle = join(directory, names[1]);
    const saved = await readFile(middle);
    await unlink(middle);
    await assert.rejects(open(directory), (error: unknown) => error instanceof StorageFatalError && /missing segment 2/.test(error.message));
    await writeFile(middle, saved);
    await unlink(join(directory, names[0]));
    await assert.rejects(open(directory), (error: unknown) => error instanceof StorageFatalError && /no snapshot is recorded/.test(error.message));
  });
});

test('after compaction the log opens from its first remaining segment', async () => {
  await withTempDir(async (directory) => {
    await buildLog(directory);
    const { store } = await open(directory);
    await store.compact(snapshotAt(20, 1), 20);
    await store.close();
    const { store: reopened, recovered } = await open(directory);
    assert.ok(recovered.entries[0].index <= 21);
    assert.equal(recovered.entries[recovered.entries.length - 1].index, 30);
    await reopened.close();
  });
});
