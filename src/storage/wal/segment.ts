// One segment file: what the store remembers about it, and how a new one is brought into being.

import { join } from 'node:path';
import { describeError, StorageFatalError } from '../errors.js';
import type { FileSystem, StoredFile } from '../file-system.js';
import { encodeSegmentHeader, SEGMENT_HEADER_BYTES, segmentFileName } from './format.js';

export class SegmentInfo {
  constructor(
    readonly sequence: number,
    /** The index the next entry had when the segment was created (also in its header and name). */
    readonly firstIndex: number,
    readonly path: string,
    /** Bytes of header and whole records: where the next record goes. */
    public sizeBytes: number,
    /** The highest entry index ever written here, 0 if none. Once it is at or below a compaction
     * point, nothing in the segment is needed any more (its other records are superseded). */
    public maxEntryIndex: number,
  ) {}
}

/**
 * Creates segment `sequence` starting at `firstIndex`: create, write the header, fdatasync the file,
 * fsync the directory (so the name survives a crash too). If the header cannot be written (a full
 * disk), the half-made file is removed and the error is rethrown as is; a failed sync is fatal.
 */
export async function createSegment(fileSystem: FileSystem, directory: string, sequence: number, firstIndex: number, fsync: boolean): Promise<{ file: StoredFile; segment: SegmentInfo }> {
  const path = join(directory, segmentFileName(sequence, firstIndex));
  const file = await fileSystem.open(path, 'createExclusive');
  try {
    await file.writev([encodeSegmentHeader(firstIndex)], 0);
  } catch (error) {
    await file.close().catch(() => {});
    await fileSystem.unlink(path).catch(() => {});
    if (fsync) await fileSystem.syncDirectory(directory).catch(() => {});
    throw error;
  }
  if (fsync) {
    try {
      await file.datasync();
      await fileSystem.syncDirectory(directory);
    } catch (error) {
      await file.close().catch(() => {});
      throw new StorageFatalError(`fsync failed while creating segment ${path}: ${describeError(error)}`, { cause: error });
    }
  }
  return { file, segment: new SegmentInfo(sequence, firstIndex, path, SEGMENT_HEADER_BYTES, 0) };
}
