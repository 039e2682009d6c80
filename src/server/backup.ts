// The backup file (GET /cluster/snapshot, raft-node --restore FILE): one node's state machine at one
// applied index, with what Raft knew of that point, checksummed end to end.
//
//   header:  magic "RKVBKUP\0" (8) | format version u32 | meta length u32 | meta (UTF-8 JSON:
//            format, clusterId, nodeId, index, term, revision, membership, createdAt)
//   body:    the state machine's snapshot stream, exactly as peers exchange it (RKVSNAP, version 1,
//            with its own SHA-256 trailer; see src/kvstore/snapshot-format.ts)
//   trailer: magic "RKVBEND\0" (8) | SHA-256 of every byte before the trailer (32)
//
// Integers big-endian. The file is written as a stream (never whole in memory); a reader checks the
// trailer's digest over the whole file before it trusts a single byte of it.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Membership } from '../raft/types.js';

export const BACKUP_MAGIC = Buffer.from('RKVBKUP\0', 'latin1');
export const BACKUP_TRAILER_MAGIC = Buffer.from('RKVBEND\0', 'latin1');
export const BACKUP_FORMAT_VERSION = 1;
const FIXED_HEADER_BYTES = BACKUP_MAGIC.length + 8;
const DIGEST_BYTES = 32;
const TRAILER_BYTES = BACKUP_TRAILER_MAGIC.length + DIGEST_BYTES;
const META_BYTES_MAX = 1024 * 1024;

export interface BackupMeta {
  readonly format: 'raft-kv-backup';
  /** The cluster the backup was taken from (a restore starts a new one). */
  readonly clusterId: string;
  /** The member whose state machine was read. */
  readonly nodeId: number;
  /** The applied index of that state machine: the backup holds exactly the entries up to it. */
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly membership: Membership;
  readonly createdAt: string;
}

export class BackupFormatError extends Error {
  override readonly name = 'BackupFormatError';
}

/** The backup stream: header, the state machine's chunks as they come, trailer. */
export async function* backupChunks(meta: BackupMeta, body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  const digest = createHash('sha256');
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const header = Buffer.alloc(FIXED_HEADER_BYTES);
  BACKUP_MAGIC.copy(header, 0);
  header.writeUInt32BE(BACKUP_FORMAT_VERSION, BACKUP_MAGIC.length);
  header.writeUInt32BE(metaBytes.length, BACKUP_MAGIC.length + 4);
  const head = Buffer.concat([header, metaBytes]);
  digest.update(head);
  yield head;
  for await (const chunk of body) {
    digest.update(chunk);
    yield chunk;
  }
  yield Buffer.concat([BACKUP_TRAILER_MAGIC, digest.digest()]);
}

export interface VerifiedBackup {
  readonly meta: BackupMeta;
  /** Byte range [bodyStart, bodyEnd) of the state machine's snapshot stream in the file. */
  readonly bodyStart: number;
  readonly bodyEnd: number;
  readonly sizeBytes: number;
}

/** Reads the header and checks the whole file's digest; throws BackupFormatError naming the problem. */
export async function verifyBackupFile(path: string): Promise<VerifiedBackup> {
  const sizeBytes = (await stat(path)).size;
  if (sizeBytes < FIXED_HEADER_BYTES + TRAILER_BYTES) throw new BackupFormatError(`${path} is ${sizeBytes} bytes: too short to be a backup`);
  const file = await open(path, 'r');
  let meta: BackupMeta;
  let bodyStart: number;
  let trailer: Buffer;
  try {
    const fixed = Buffer.alloc(FIXED_HEADER_BYTES);
    await file.read(fixed, 0, FIXED_HEADER_BYTES, 0);
    if (!fixed.subarray(0, BACKUP_MAGIC.length).equals(BACKUP_MAGIC)) throw new BackupFormatError(`${path} is not a backup (bad magic)`);
    const version = fixed.readUInt32BE(BACKUP_MAGIC.length);
    if (version !== BACKUP_FORMAT_VERSION) throw new BackupFormatError(`${path}: unsupported backup format version ${version} (this build reads ${BACKUP_FORMAT_VERSION})`);
    const metaLength = fixed.readUInt32BE(BACKUP_MAGIC.length + 4);
    bodyStart = FIXED_HEADER_BYTES + metaLength;
    if (metaLength > META_BYTES_MAX || bodyStart + TRAILER_BYTES > sizeBytes) throw new BackupFormatError(`${path}: header length ${metaLength} does not fit the file`);
    const metaBytes = Buffer.alloc(metaLength);
    await file.read(metaBytes, 0, metaLength, FIXED_HEADER_BYTES);
    meta = parseMeta(metaBytes, path);
    trailer = Buffer.alloc(TRAILER_BYTES);
    await file.read(trailer, 0, TRAILER_BYTES, sizeBytes - TRAILER_BYTES);
  } finally {
    await file.close();
  }
  if (!trailer.subarray(0, BACKUP_TRAILER_MAGIC.length).equals(BACKUP_TRAILER_MAGIC)) throw new BackupFormatError(`${path}: the trailer is missing (the file was cut short)`);
  const digest = createHash('sha256');
  for await (const chunk of createReadStream(path, { start: 0, end: sizeBytes - TRAILER_BYTES - 1 })) digest.update(chunk as Buffer);
  if (!digest.digest().equals(trailer.subarray(BACKUP_TRAILER_MAGIC.length))) throw new BackupFormatError(`${path}: checksum mismatch: the file is damaged`);
  return { meta, bodyStart, bodyEnd: sizeBytes - TRAILER_BYTES, sizeBytes };
}

/** The state machine's snapshot stream inside a verified backup file. */
export async function* backupBody(path: string, verified: VerifiedBackup): AsyncGenerator<Uint8Array, void, undefined> {
  if (verified.bodyEnd <= verified.bodyStart) return;
  for await (const chunk of createReadStream(path, { start: verified.bodyStart, end: verified.bodyEnd - 1, highWaterMark: 256 * 1024 })) {
    yield chunk as Buffer;
  }
}

function parseMeta(bytes: Buffer, path: string): BackupMeta {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BackupFormatError(`${path}: the header is not JSON`);
  }
  const meta = value as Partial<Record<keyof BackupMeta, unknown>> | null;
  const whole = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (meta === null || typeof meta !== 'object' || meta.format !== 'raft-kv-backup' || typeof meta.clusterId !== 'string'
    || !whole(meta.nodeId) || !whole(meta.index) || !whole(meta.term) || !whole(meta.revision) || typeof meta.createdAt !== 'string'
    || typeof meta.membership !== 'object' || meta.membership === null || !Array.isArray((meta.membership as { members?: unknown }).members)) {
    throw new BackupFormatError(`${path}: the header lacks a field or has one of the wrong type`);
  }
  return meta as unknown as BackupMeta;
}
