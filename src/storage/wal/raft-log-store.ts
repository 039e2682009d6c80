// The durable Raft log: one write and one fdatasync per Ready (group commit), segment rotation,
// compaction by deleting whole segments, and the failure rules the rest of the node relies on:
//   - save() resolves only once its bytes are on stable storage;
//   - a failed fdatasync (or any write error other than a full disk) fails the store for good, since
//     after a failed fsync the kernel may have dropped the dirty pages and a retry can "succeed" over
//     data that is gone;
//   - a full disk undoes the partial write (truncate back, fsync) and reports DiskFullError, so the
//     store stays consistent and works again when space returns.

import { createLogger, type Logger } from '../../common/logger.js';
import type { Entry, HardState, SnapshotMeta } from '../../raft/types.js';
import { describeError, DiskFullError, isDiskFull, StorageContractError, StorageFatalError } from '../errors.js';
import { nodeFileSystem, type FileSystem, type StoredFile } from '../file-system.js';
import { SEGMENT_HEADER_BYTES, SEGMENT_SIZE_BYTES_DEFAULT } from './format.js';
import { LogShape, LogShapeError } from './log-shape.js';
import { encodeRecords, type WalRecord } from './records.js';
import { recoverLog, type RecoveredLog } from './recovery.js';
import { createSegment, type SegmentInfo } from './segment.js';
import { PREALLOCATE_LEAD_BYTES_DEFAULT, Preallocator } from './preallocation.js';

export interface WalOptions {
  /** Default true. false skips every fdatasync and directory fsync: an unsafe mode, for benchmarks
   * and throwaway clusters only; a crash of the machine then loses acknowledged writes. */
  readonly fsync?: boolean;
  /** A segment is closed once it reaches this size (a batch is never split, so it may pass it by
   * one batch). Default 64 MiB. */
  readonly segmentSizeBytes?: number;
  /** Zeros kept written ahead of the last record so synced writes need no size change
   * (preallocation.ts). Default 2 MiB; 0 turns it off; always off without fsync. */
  readonly preallocateBytes?: number;
  readonly fileSystem?: FileSystem;
  readonly logger?: Logger;
}

/** What one Raft Ready asks to persist (see `Ready` in src/raft/types.ts). */
export interface SaveBatch {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader: it replaces the whole stored log (the core hands one over
   * only when its log does not hold the snapshot's last entry). Local snapshots go to compact(). */
  readonly snapshot: SnapshotMeta | null;
}

export interface WalStats {
  readonly segments: number;
  readonly bytes: number;
  /** The first entry a reopen would recover (equals lastIndex + 1 when none is held). */
  readonly firstIndex: number;
  readonly lastIndex: number;
}

export class RaftLogStore {
  /** Operations run one at a time, in call order, even if a caller does not wait. */
  private queue: Promise<void> = Promise.resolve();
  private failure: StorageFatalError | null = null;
  private closed = false;
  private readonly preallocator: Preallocator;

  private constructor(
    private readonly directory: string,
    private readonly fileSystem: FileSystem,
    private readonly fsync: boolean,
    private readonly segmentSizeBytes: number,
    private readonly logger: Logger,
    private shape: LogShape,
    /** In order, oldest first; the last one is the active segment, open in `activeFile`. */
    private readonly segments: SegmentInfo[],
    private activeFile: StoredFile,
    preallocateBytes: number,
  ) {
    this.preallocator = new Preallocator(
      preallocateBytes,
      (error) => this.fail(`preallocating write-ahead log space failed: ${describeError(error)}`, error),
      () => this.logger.warn('disk full: no more space is preallocated for the write-ahead log until its next segment', { directory }),
    );
  }

  static async open(directory: string, options: WalOptions = {}): Promise<{ store: RaftLogStore; recovered: RecoveredLog }> {
    const fsync = options.fsync ?? true;
    const segmentSizeBytes = options.segmentSizeBytes ?? SEGMENT_SIZE_BYTES_DEFAULT;
    if (!Number.isSafeInteger(segmentSizeBytes) || segmentSizeBytes <= SEGMENT_HEADER_BYTES) throw new RangeError(`segmentSizeBytes must be an integer above ${SEGMENT_HEADER_BYTES}, not ${segmentSizeBytes}`);
    const fileSystem = options.fileSystem ?? nodeFileSystem;
    const logger = (options.logger ?? createLogger('info')).child({ component: 'wal' });
    if (!fsync) logger.warn('write-ahead log fsync is OFF (unsafe): a machine crash can lose acknowledged writes', { directory });
    const startedMs = performance.now();
    const recovery = await recoverLog(fileSystem, directory, fsync, logger);
    const preallocateBytes = fsync ? options.preallocateBytes ?? PREALLOCATE_LEAD_BYTES_DEFAULT : 0;
    if (!Number.isSafeInteger(preallocateBytes) || preallocateBytes < 0) throw new RangeError(`preallocateBytes must be a non-negative integer, not ${preallocateBytes}`);
    const store = new RaftLogStore(directory, fileSystem, fsync, segmentSizeBytes, logger, recovery.shape, recovery.segments, recovery.activeFile, preallocateBytes);
    await store.startPreallocation();
    const { recovered } = recovery;
    logger.info('write-ahead log recovered', {
      directory, segments: recovery.segments.length, entries: recovered.entries.length, firstIndex: recovery.shape.firstIndex, lastIndex: recovery.shape.lastIndex,
      snapshotIndex: recovered.snapshot?.index ?? 0, term: recovered.hardState.term, tornBytesCut: recovered.tornBytesCut, recoveryMs: Math.round(performance.now() - startedMs),
    });
    return { store, recovered };
  }

  /**
   * Durably records one Raft Ready: the snapshot (if any, replacing the log), then the entries (if
   * `entries[0].index` is at or below the stored last index, the stored suffix from there is replaced
   * through a truncate record), then the hard state (if any). One write and one fdatasync for the
   * whole batch; resolves only after the fdatasync succeeded.
   */
  save(batch: SaveBatch): Promise<void> {
    return this.serialize(async () => {
      const records = this.recordsFor(batch);
      if (records.length > 0) await this.append(records);
    });
  }

  /**
   * A snapshot at `meta.index` is durable elsewhere: records it as the compaction point (with the
   * current hard state, since the segment holding the last one may go), then deletes the oldest whole
   * segments whose entries are all at or below `compactTo` (at most `meta.index`). The active segment
   * is never deleted, and files are deleted only after the record is synced.
   */
  compact(meta: SnapshotMeta, compactTo: number): Promise<void> {
    return this.serialize(async () => {
      if (!Number.isSafeInteger(compactTo) || compactTo < 0 || compactTo > meta.index) throw new StorageContractError(`compactTo ${compactTo} must be between 0 and the snapshot index ${meta.index}`);
      const records: WalRecord[] = [{ type: 'snapshotMeta', meta, replacesLog: false }];
      if (this.shape.hasHardState) records.push({ type: 'hardState', hardState: this.shape.hardState });
      await this.append(records);
      await this.deleteSegmentsUpTo(compactTo);
    });
  }

  close(): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.preallocator.settle();
      await this.activeFile.close();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  stats(): WalStats {
    let bytes = 0;
    for (const segment of this.segments) bytes += segment.sizeBytes;
    return { segments: this.segments.length, bytes, firstIndex: this.shape.firstIndex, lastIndex: this.shape.lastIndex };
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** The active file's real size (a zero tail included) starts the preallocation. */
  private async startPreallocation(): Promise<void> {
    this.preallocator.reset(await this.activeFile.sizeBytes());
    this.preallocator.afterWrite(this.activeFile, this.segments[this.segments.length - 1].sizeBytes, this.segmentSizeBytes);
  }

  private serialize(operation: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => {
      this.checkNotFailed();
      if (this.closed) throw new StorageContractError('the write-ahead log is closed');
      return operation();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private recordsFor(batch: SaveBatch): WalRecord[] {
    const records: WalRecord[] = [];
    let nextIndex = this.shape.nextIndex;
    if (batch.snapshot !== null) {
      records.push({ type: 'snapshotMeta', meta: batch.snapshot, replacesLog: true });
      nextIndex = batch.snapshot.index + 1;
    }
    const first = batch.entries[0];
    if (first !== undefined && first.index < nextIndex) records.push({ type: 'truncate', fromIndex: first.index });
    for (const entry of batch.entries) records.push({ type: 'entry', entry });
    if (batch.hardState !== null) records.push({ type: 'hardState', hardState: batch.hardState });
    return records;
  }

  /** Writes records as one batch: checked first, then one write with its fdatasync (O_DSYNC). */
  private async append(records: readonly WalRecord[]): Promise<void> {
    const active = this.segments[this.segments.length - 1];
    const rotate = active.sizeBytes >= this.segmentSizeBytes && active.sizeBytes > SEGMENT_HEADER_BYTES;
    // Check the batch against the log's rules on a copy, so a bad batch changes nothing.
    const next = this.shape.clone();
    try {
      for (const record of records) next.apply(record, active.sequence + (rotate ? 1 : 0));
    } catch (error) {
      if (error instanceof LogShapeError) throw new StorageContractError(`refusing to write: ${error.message}`);
      throw error;
    }
    let bytes: Buffer;
    try {
      bytes = encodeRecords(records);
    } catch (error) {
      throw new StorageContractError(`refusing to write: ${describeError(error)}`);
    }
    if (rotate) await this.rotate();
    const segment = this.segments[this.segments.length - 1];
    const position = segment.sizeBytes;
    await this.preallocator.beforeWrite(position, bytes.length);
    // The fill it waited for may have failed its fdatasync: nothing more is written then.
    this.checkNotFailed();
    try {
      // One O_DSYNC write: the bytes and their flush in one system call.
      if (this.fsync) await this.activeFile.writevDurable([bytes], position);
      else await this.activeFile.writev([bytes], position);
    } catch (error) {
      // A full disk cuts the file back to `position`: what was before it is what was there already.
      await this.undoPartialWrite(error, segment, position, bytes.length, this.fsync);
    }
    segment.sizeBytes = position + bytes.length;
    for (const record of records) {
      if (record.type === 'entry' && record.entry.index > segment.maxEntryIndex) segment.maxEntryIndex = record.entry.index;
    }
    this.shape = next;
    this.preallocator.afterWrite(this.activeFile, segment.sizeBytes, this.segmentSizeBytes);
  }

  /** A write failed. A full disk is undone and reported; anything else fails the store. Never returns. */
  private async undoPartialWrite(error: unknown, segment: SegmentInfo, position: number, sizeBytes: number, synced: boolean): Promise<never> {
    if (!isDiskFull(error)) {
      // An O_DSYNC write that failed may have failed in its flush: the fdatasync rule applies.
      const what = synced ? `writing ${sizeBytes} bytes with their fdatasync (O_DSYNC)` : `writing ${sizeBytes} bytes`;
      throw this.fail(`${what} to ${segment.path} at byte ${position} failed: ${describeError(error)}${synced ? '; the page cache can no longer be trusted' : ''}`, error);
    }
    try {
      await this.preallocator.settle();
      await this.activeFile.truncate(position);
      if (this.fsync) await this.activeFile.datasync();
      this.preallocator.reset(position);
    } catch (cleanupError) {
      throw this.fail(`the disk filled while writing to ${segment.path}, and cutting the partial write off at byte ${position} failed: ${describeError(cleanupError)}`, cleanupError);
    }
    this.logger.warn('disk full: the write was undone and refused', { file: segment.path, offset: position, sizeBytes });
    throw new DiskFullError(`the disk is full: ${sizeBytes} bytes could not be written to ${segment.path}; nothing was kept, retry when space returns`, { cause: error });
  }

  /** Starts the next segment at the index the next entry will have. */
  private async rotate(): Promise<void> {
    const previous = this.segments[this.segments.length - 1];
    // A fill still writing zeros to the old file finishes before that file is closed.
    await this.preallocator.settle();
    let created: { file: StoredFile; segment: SegmentInfo };
    try {
      created = await createSegment(this.fileSystem, this.directory, previous.sequence + 1, this.shape.nextIndex, this.fsync);
    } catch (error) {
      if (error instanceof StorageFatalError) throw this.fail(error.message, error);
      if (isDiskFull(error)) throw new DiskFullError(`the disk is full: could not start write-ahead log segment ${previous.sequence + 1} in ${this.directory}; retry when space returns`, { cause: error });
      throw this.fail(`could not start write-ahead log segment ${previous.sequence + 1} in ${this.directory}: ${describeError(error)}`, error);
    }
    const old = this.activeFile;
    this.segments.push(created.segment);
    this.activeFile = created.file;
    this.preallocator.reset(created.segment.sizeBytes);
    await old.close().catch((error: unknown) => this.logger.warn('closing a finished segment failed', { file: previous.path, error }));
  }

  /** Deletes the oldest segments while every entry in them is at or below `compactTo`. One file at a
   * time, each deletion made durable before the next, so a crash leaves the remaining segments
   * numbered without a gap. */
  private async deleteSegmentsUpTo(compactTo: number): Promise<void> {
    const deleted: string[] = [];
    while (this.segments.length > 1 && this.segments[0].maxEntryIndex <= compactTo) {
      const segment = this.segments[0];
      try {
        await this.fileSystem.unlink(segment.path);
        if (this.fsync) await this.fileSystem.syncDirectory(this.directory);
      } catch (error) {
        throw this.fail(`deleting compacted segment ${segment.path} failed: ${describeError(error)}`, error);
      }
      this.segments.shift();
      deleted.push(segment.path);
    }
    if (deleted.length === 0) return;
    this.shape.forgetSegmentsBelow(this.segments[0].sequence);
    this.logger.info('compacted the write-ahead log', { compactTo, segmentsDeleted: deleted.length, firstIndex: this.shape.firstIndex });
  }

  private checkNotFailed(): void {
    if (this.failure !== null) throw new StorageFatalError(`the write-ahead log stopped after an earlier failure: ${this.failure.message}`, { cause: this.failure });
  }

  /** Marks the store failed (for good) and returns the error to throw. */
  private fail(message: string, cause: unknown): StorageFatalError {
    const error = new StorageFatalError(message, { cause });
    if (this.failure === null) {
      this.failure = error;
      this.logger.error('write-ahead log failed; the node must stop', { error: message });
    }
    return error;
  }
}
