// Opening a log directory: read every segment in order, replay its records through the log's rules,
// cut off a torn tail, and refuse to go on if anything else is wrong. A node must serve nothing
// damaged: a bad checksum anywhere but at the very end of the last segment, a broken header, a
// missing segment or entries out of order all stop it with a message naming the file and the byte.
// Zeros after the last record of a segment are preallocated space, not damage.

import { dirname, join } from 'node:path';
import type { Logger } from '../../common/logger.js';
import type { Entry, HardState, SnapshotMeta } from '../../raft/types.js';
import { describeError, StorageFatalError } from '../errors.js';
import { readAll, type FileSystem, type StoredFile } from '../file-system.js';
import { decodeEntry } from '../../codec/raft-codec.js';
import { decodeSegmentHeader, encodeSegmentHeader, parseSegmentFileName, RecordType, SEGMENT_HEADER_BYTES, type SegmentName } from './format.js';
import { LogShape, LogShapeError } from './log-shape.js';
import { decodeRecord, type WalRecord } from './records.js';
import { createSegment, SegmentInfo } from './segment.js';
import { allZero, scanRecords, validRecordAfter } from './segment-scan.js';

export interface RecoveredLog {
  /** {term: 0, votedFor: 0, commitIndex: 0} when none was saved. */
  readonly hardState: HardState;
  /** The latest snapshot or compaction point recorded, null if none. */
  readonly snapshot: SnapshotMeta | null;
  /** Contiguous; may start at or before snapshot.index + 1 (a tail kept for slow followers). */
  readonly entries: readonly Entry[];
  /** Bytes cut off a torn tail (0 when the log ended cleanly). */
  readonly tornBytesCut: number;
}

export interface Recovery {
  readonly recovered: RecoveredLog;
  readonly shape: LogShape;
  /** In order; the last one is active and open in `activeFile`. */
  readonly segments: SegmentInfo[];
  readonly activeFile: StoredFile;
}

function damaged(path: string, offset: number, reason: string): StorageFatalError {
  return new StorageFatalError(`write-ahead log segment ${path} is damaged at byte ${offset}: ${reason}. The node serves nothing damaged and stops; restore this member from its peers (remove it, wipe its data directory, add it again).`);
}

/** The segment files of `directory`, in order, checked for duplicates and gaps. */
async function listSegments(fileSystem: FileSystem, directory: string): Promise<SegmentName[]> {
  const names = (await fileSystem.readdir(directory)).map(parseSegmentFileName).filter((name): name is SegmentName => name !== null);
  names.sort((a, b) => a.sequence - b.sequence);
  for (let k = 1; k < names.length; k++) {
    const previous = names[k - 1];
    const current = names[k];
    if (current.sequence === previous.sequence) throw new StorageFatalError(`write-ahead log directory ${directory} holds two segments numbered ${current.sequence}: ${previous.name} and ${current.name}`);
    if (current.sequence !== previous.sequence + 1) throw new StorageFatalError(`write-ahead log directory ${directory} is missing segment ${previous.sequence + 1} (between ${previous.name} and ${current.name}): a segment was deleted or lost`);
  }
  return names;
}

/** A segment whose creation never completed: shorter than a header and matching what was being
 * written, or all zeros (space the file system extended but the data never reached). */
function isHalfCreated(bytes: Buffer, name: SegmentName): boolean {
  if (allZero(bytes)) return true;
  return bytes.length < SEGMENT_HEADER_BYTES && bytes.equals(encodeSegmentHeader(name.firstIndex).subarray(0, bytes.length));
}

/** Collects the entries recovery returns, following the same records the shape checks. */
class EntryCollector {
  readonly entries: Entry[] = [];

  apply(record: WalRecord): void {
    switch (record.type) {
      case 'entry':
        this.entries.push(record.entry);
        return;
      case 'truncate': {
        const first = this.entries[0];
        if (first !== undefined) this.entries.length = Math.max(0, Math.min(this.entries.length, record.fromIndex - first.index));
        return;
      }
      case 'snapshotMeta':
        if (record.replacesLog) this.entries.length = 0;
        return;
      case 'hardState':
        return;
    }
  }
}

interface Replay {
  shape: LogShape | null;
  readonly collector: EntryCollector;
  tornBytesCut: number;
}

export async function recoverLog(fileSystem: FileSystem, directory: string, fsync: boolean, logger: Logger): Promise<Recovery> {
  const existed = (await fileSystem.stat(directory)) !== null;
  await fileSystem.mkdir(directory);
  if (!existed && fsync) await fileSystem.syncDirectory(dirname(directory));
  const names = await listSegments(fileSystem, directory);
  const replay: Replay = { shape: null, collector: new EntryCollector(), tornBytesCut: 0 };
  const segments: SegmentInfo[] = [];
  let activeFile: StoredFile | null = null;
  for (let k = 0; k < names.length; k++) {
    const name = names[k];
    const isLast = k === names.length - 1;
    const path = join(directory, name.name);
    const file = await fileSystem.open(path, isLast ? 'readWrite' : 'read');
    let keepOpen = false;
    try {
      const bytes = await readAll(file);
      if (isLast && isHalfCreated(bytes, name)) {
        await file.close();
        await removeHalfCreated(fileSystem, directory, path, bytes.length, fsync, logger);
        if (segments.length === 0 && name.sequence !== 1) throw new StorageFatalError(`write-ahead log directory ${directory}: its only segment ${name.name} was never completed, and the segments before it are gone`);
        break;
      }
      segments.push(await replaySegment(replay, name, path, bytes, isLast, file, fsync, logger));
      keepOpen = isLast;
    } finally {
      if (!keepOpen) await file.close().catch(() => {});
    }
    if (keepOpen) activeFile = file;
  }
  if (activeFile === null && segments.length > 0) {
    // The last segment was half-created and removed: the one before it is active again.
    activeFile = await fileSystem.open(segments[segments.length - 1].path, 'readWrite');
  }
  if (activeFile === null || replay.shape === null) {
    // A new log (or one whose only segment never got its header): start at index 1.
    const created = await createSegment(fileSystem, directory, 1, 1, fsync);
    const shape = new LogShape(1);
    return { recovered: { hardState: shape.hardState, snapshot: null, entries: [], tornBytesCut: replay.tornBytesCut }, shape, segments: [created.segment], activeFile: created.file };
  }
  try {
    checkConnected(replay.shape, replay.collector.entries, directory);
  } catch (error) {
    await activeFile.close().catch(() => {});
    throw error;
  }
  const shape = replay.shape;
  return {
    recovered: { hardState: shape.hardState, snapshot: shape.snapshot, entries: replay.collector.entries, tornBytesCut: replay.tornBytesCut },
    shape,
    segments,
    activeFile,
  };
}

async function removeHalfCreated(fileSystem: FileSystem, directory: string, path: string, sizeBytes: number, fsync: boolean, logger: Logger): Promise<void> {
  logger.warn('removing a write-ahead log segment whose creation was cut short by a crash', { file: path, sizeBytes });
  await fileSystem.unlink(path);
  if (fsync) await fileSystem.syncDirectory(directory);
}

async function replaySegment(replay: Replay, name: SegmentName, path: string, bytes: Buffer, isLast: boolean, file: StoredFile, fsync: boolean, logger: Logger): Promise<SegmentInfo> {
  const header = decodeSegmentHeader(bytes);
  if (!header.ok) throw damaged(path, header.offset, header.reason);
  if (header.firstIndex !== name.firstIndex) throw damaged(path, 12, `the header says the segment starts at index ${header.firstIndex}, its name says ${name.firstIndex}`);
  if (replay.shape === null) {
    replay.shape = new LogShape(header.firstIndex);
  } else if (header.firstIndex !== replay.shape.nextIndex) {
    throw damaged(path, 12, `the segment starts at index ${header.firstIndex}, but the log before it ends at ${replay.shape.lastIndex}`);
  }
  const shape = replay.shape;
  const segment = new SegmentInfo(name.sequence, header.firstIndex, path, SEGMENT_HEADER_BYTES, 0);
  const entries = replay.collector.entries;
  const result = scanRecords(bytes, SEGMENT_HEADER_BYTES, (type, payload, offset) => {
    // Entries are nearly every record: they take a path that builds no record object.
    if (type === RecordType.entry) {
      let entry: Entry;
      try {
        entry = decodeEntry(payload);
      } catch (error) {
        throw damaged(path, offset, `an entry record with a good checksum does not decode (${describeError(error)})`);
      }
      try {
        shape.appendEntry(entry.index, entry.term, name.sequence);
      } catch (error) {
        throw error instanceof LogShapeError ? damaged(path, offset, error.message) : error;
      }
      entries.push(entry);
      if (entry.index > segment.maxEntryIndex) segment.maxEntryIndex = entry.index;
      return;
    }
    let record: WalRecord;
    try {
      record = decodeRecord(type, payload);
    } catch (error) {
      throw damaged(path, offset, `a record with a good checksum does not decode (${describeError(error)})`);
    }
    try {
      shape.apply(record, name.sequence);
    } catch (error) {
      throw error instanceof LogShapeError ? damaged(path, offset, error.message) : error;
    }
    replay.collector.apply(record);
  });
  segment.sizeBytes = result.endOffset;
  const problem = result.problem;
  if (problem === null) return segment;
  // Zeros from the last record to the end of the file: space preallocated ahead of the records
  // (preallocation.ts; any segment may end so), or a last write that never reached the disk. The
  // segment ends there; the zeros stay for the next records.
  if (allZero(bytes.subarray(problem.offset))) return segment;
  // A torn write can only be the last thing written: the end of the last segment, with nothing
  // valid after it. Anything else is damage to data that was once durable.
  if (!isLast || !problem.mayBeTorn || validRecordAfter(bytes, problem.offset)) throw damaged(path, problem.offset, problem.reason);
  const tornBytes = bytes.length - problem.offset;
  logger.warn('cutting a torn record off the end of the write-ahead log', { file: path, offset: problem.offset, bytesCut: tornBytes, reason: problem.reason });
  try {
    await file.truncate(problem.offset);
    if (fsync) await file.datasync();
  } catch (error) {
    throw new StorageFatalError(`could not cut the torn tail off ${path} at byte ${problem.offset}: ${describeError(error)}`, { cause: error });
  }
  replay.tornBytesCut += tornBytes;
  return segment;
}

/** The recovered log must continue from the snapshot (or from index 1 without one). */
function checkConnected(shape: LogShape, entries: readonly Entry[], directory: string): void {
  const first = entries[0];
  if (first !== undefined && (first.index !== shape.firstIndex || entries[entries.length - 1].index !== shape.lastIndex)) {
    throw new StorageFatalError(`write-ahead log ${directory}: replayed entries ${first.index}..${entries[entries.length - 1].index} disagree with the log's shape ${shape.firstIndex}..${shape.lastIndex} (a bug)`);
  }
  const snapshot = shape.snapshot;
  const coveredUpTo = snapshot === null ? 0 : snapshot.index;
  if (shape.firstIndex > coveredUpTo + 1) {
    throw new StorageFatalError(`write-ahead log ${directory} starts at index ${shape.firstIndex}, but ${snapshot === null ? 'no snapshot is recorded' : `the snapshot only covers up to ${snapshot.index}`}: the entries between are missing (a segment was deleted or lost)`);
  }
}
