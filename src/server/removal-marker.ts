// A member that learned it was removed writes REMOVED into its data directory, so that a restart
// with the same directory refuses to take part again (the log rarely shows the removal: the leader
// stops replicating to a member as soon as the entry removing it is appended).
//
// REMOVED is UTF-8 text: a first line "raft-kv removed 1" (magic and format version), then one line of
// JSON {clusterId, nodeId, index, how, removedAt}. Written to a temp file, fdatasynced, renamed, and
// the directory fsynced. Whatever its content, the file's presence means the node was removed.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem, writeFileAtomically } from '../storage/file-system.js';

export const REMOVED_FILE = 'REMOVED';
const MAGIC_LINE = 'raft-kv removed 1';

export interface RemovalRecord {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly index: number;
  readonly how: string;
  readonly removedAt: string;
}

export async function readRemovalRecord(dataDir: string): Promise<RemovalRecord | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, REMOVED_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const [magic, json] = text.split('\n', 2);
  try {
    if (magic !== MAGIC_LINE) throw new Error('not a removal record');
    return JSON.parse(json) as RemovalRecord;
  } catch {
    // Damaged or from another version: the file's presence still says the node was removed.
    return { clusterId: '?', nodeId: 0, index: 0, how: `unreadable ${REMOVED_FILE} file`, removedAt: '?' };
  }
}

export async function writeRemovalRecord(dataDir: string, record: RemovalRecord): Promise<void> {
  await writeFileAtomically(nodeFileSystem, dataDir, REMOVED_FILE, Buffer.from(`${MAGIC_LINE}\n${JSON.stringify(record)}\n`, 'utf8'));
}
