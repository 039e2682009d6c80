// Streams a snapshot out of a pinned lmdb read view, a chunk at a time: the state is never whole
// in memory, and applies carry on while the export runs (lmdb readers never block the writer).

import { setImmediate as nextMacrotask } from 'node:timers/promises';
import type { BinaryDb, ReadLease } from './engine.js';
import type { StateMeta } from './meta.js';
import { RECORD_HISTORY, RECORD_RESULT, RECORD_SESSION, SnapshotWriter, type SnapshotRecordType } from './snapshot-format.js';

export interface ExportDbs {
  readonly history: BinaryDb;
  readonly sessions: BinaryDb;
  readonly results: BinaryDb;
}

/**
 * After this many bytes the generator waits for the next macrotask, so that a consumer that never
 * waits on I/O (an in-process import, a test) cannot starve timers and sockets for the whole export.
 */
const YIELD_TO_EVENT_LOOP_BYTES = 256 * 1024;

export async function* snapshotChunks(dbs: ExportDbs, lease: ReadLease, meta: StateMeta): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    const writer = new SnapshotWriter(meta);
    let bytesSinceBreak = 0;
    const sources: readonly [SnapshotRecordType, BinaryDb][] = [[RECORD_HISTORY, dbs.history], [RECORD_SESSION, dbs.sessions], [RECORD_RESULT, dbs.results]];
    for (const [type, db] of sources) {
      checkLease(lease);
      const iterator = db.getRange({ transaction: lease.view })[Symbol.iterator]();
      try {
        for (;;) {
          checkLease(lease);
          const step = iterator.next();
          if (step.done === true) break;
          writer.record(type, step.value.key, step.value.value);
          const chunk = writer.takeChunk();
          if (chunk === null) continue;
          yield chunk;
          bytesSinceBreak += chunk.length;
          if (bytesSinceBreak >= YIELD_TO_EVENT_LOOP_BYTES) {
            bytesSinceBreak = 0;
            await nextMacrotask();
          }
        }
      } finally {
        // Closing the cursor touches lmdb: only while the engine is still open.
        if (lease.valid) iterator.return?.();
      }
    }
    checkLease(lease);
    yield writer.finish();
  } finally {
    lease.release();
  }
}

function checkLease(lease: ReadLease): void {
  if (!lease.valid) throw new Error('snapshot export aborted: the state machine was closed while it was being read');
}
