// A node's data directory: held with an exclusive lock while the node runs, and marked with an
// identity file once the member has run, so a restart with an empty directory can be told apart from a
// first start (ARCHITECTURE.md, "Identity and formats").
//
// The lock is a LOCK file created with O_EXCL ('wx') holding the owner's PID. Node has no flock(), and
// a PID file has one known weakness: after a reboot the PID may belong to an unrelated live process,
// and then the lock is refused with a message saying how to remove it by hand.
//
// identity layout (little-endian): magic "\x89RKVID\r\n" (8) | u32 format version | u32 JSON length |
// u32 CRC-32 (zlib) of the JSON | JSON {clusterId, nodeId, createdAt}. Written to a temp file,
// fdatasynced, renamed over the old one, and the directory fsynced: it is either the old or the new.

import { dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../common/logger.js';
import { DataDirLockedError, describeError, errorCode, StorageFatalError } from './errors.js';
import { nodeFileSystem, readFileIfExists, writeFileAtomically, type FileSystem } from './file-system.js';

export interface Identity {
  /** The id every founding member computes from the initial configuration. */
  readonly clusterId: string;
  readonly nodeId: number;
  /** ISO 8601, when this member first started with this directory. */
  readonly createdAt: string;
}

export interface DataDir {
  /** Absolute path of the directory. */
  readonly path: string;
  /** The identity read when the directory was opened (or last written), null if it never was. */
  readIdentity(): Identity | null;
  /** Records the identity durably (atomic replace). */
  writeIdentity(identity: Identity): Promise<void>;
  /** Releases the lock; idempotent. */
  release(): Promise<void>;
}

export interface DataDirOptions {
  readonly fileSystem?: FileSystem;
}

export const LOCK_FILE = 'LOCK';
export const IDENTITY_FILE = 'identity';
const IDENTITY_MAGIC = Buffer.from([0x89, 0x52, 0x4b, 0x56, 0x49, 0x44, 0x0d, 0x0a]);
const IDENTITY_FORMAT_VERSION = 1;
const IDENTITY_HEADER_BYTES = 20;
const IDENTITY_JSON_BYTES_MAX = 64 * 1024;

/** Directories this process holds. A LOCK naming our own PID that is not in here was left by an
 * earlier process that had the same PID (common in containers, where the node is often PID 1). */
const heldByThisProcess = new Set<string>();

export async function openDataDir(path: string, logger: Logger, options: DataDirOptions = {}): Promise<DataDir> {
  const fileSystem = options.fileSystem ?? nodeFileSystem;
  const directory = resolve(path);
  // Claimed before the first await, so two opens racing inside one process cannot both succeed.
  if (heldByThisProcess.has(directory)) throw new DataDirLockedError(`data directory ${directory} is already held by this process (PID ${process.pid})`);
  heldByThisProcess.add(directory);
  let identity: Identity | null;
  try {
    const existed = (await fileSystem.stat(directory)) !== null;
    await fileSystem.mkdir(directory);
    if (!existed) await fileSystem.syncDirectory(dirname(directory));
    await acquireLock(fileSystem, directory, logger);
  } catch (error) {
    heldByThisProcess.delete(directory);
    throw error;
  }
  try {
    identity = await loadIdentity(fileSystem, directory);
  } catch (error) {
    await releaseLock(fileSystem, directory, logger);
    throw error;
  }
  let released = false;
  return {
    path: directory,
    readIdentity: () => identity,
    writeIdentity: async (next) => {
      if (released) throw new Error(`data directory ${directory} was released`);
      await storeIdentity(fileSystem, directory, next);
      identity = next;
    },
    release: async () => {
      if (released) return;
      released = true;
      await releaseLock(fileSystem, directory, logger);
    },
  };
}

// ---- the lock ----------------------------------------------------------------------------------

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which is alive all the same.
    return errorCode(error) === 'EPERM';
  }
}

async function acquireLock(fileSystem: FileSystem, directory: string, logger: Logger): Promise<void> {
  const lockPath = join(directory, LOCK_FILE);
  if (await tryCreateLock(fileSystem, lockPath)) return;
  const content = await readFileIfExists(fileSystem, lockPath);
  const pid = content === null ? NaN : Number.parseInt(content.toString('utf8').trim(), 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new DataDirLockedError(`data directory ${directory} is locked (${lockPath} exists) but the lock names no process; another node may be starting. If no node uses this directory, delete ${lockPath}.`);
  }
  if (pid !== process.pid && isProcessAlive(pid)) {
    throw new DataDirLockedError(`data directory ${directory} is in use by process ${pid} (${lockPath}). If that process is not a node of this store (a PID reused after a reboot), delete ${lockPath} and start again.`);
  }
  logger.warn('taking over a stale data directory lock left by a process that is gone', { directory, stalePid: pid });
  await fileSystem.unlink(lockPath);
  // Created with 'wx' again: if another process took it in between, one of us loses, cleanly.
  if (!(await tryCreateLock(fileSystem, lockPath))) throw new DataDirLockedError(`data directory ${directory} was locked by another process while taking over a stale lock (${lockPath})`);
}

/** Creates LOCK with our PID; false if it exists already. */
async function tryCreateLock(fileSystem: FileSystem, lockPath: string): Promise<boolean> {
  let file;
  try {
    file = await fileSystem.open(lockPath, 'createExclusive');
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw error;
  }
  try {
    await file.writev([Buffer.from(`${process.pid}\n`)], 0);
  } finally {
    await file.close();
  }
  return true;
}

async function releaseLock(fileSystem: FileSystem, directory: string, logger: Logger): Promise<void> {
  heldByThisProcess.delete(directory);
  const lockPath = join(directory, LOCK_FILE);
  try {
    const content = await readFileIfExists(fileSystem, lockPath);
    // Only remove a lock that is still ours.
    if (content !== null && Number.parseInt(content.toString('utf8').trim(), 10) === process.pid) await fileSystem.unlink(lockPath);
  } catch (error) {
    logger.warn('could not remove the data directory lock', { lockPath, error: describeError(error) });
  }
}

// ---- the identity ------------------------------------------------------------------------------

export function encodeIdentity(identity: Identity): Buffer {
  const json = Buffer.from(JSON.stringify({ clusterId: identity.clusterId, nodeId: identity.nodeId, createdAt: identity.createdAt }), 'utf8');
  const header = Buffer.alloc(IDENTITY_HEADER_BYTES);
  IDENTITY_MAGIC.copy(header, 0);
  header.writeUInt32LE(IDENTITY_FORMAT_VERSION, 8);
  header.writeUInt32LE(json.length, 12);
  header.writeUInt32LE(crc32(json) >>> 0, 16);
  return Buffer.concat([header, json]);
}

/** Parses an identity file; throws StorageFatalError naming the file if it is damaged. */
export function decodeIdentity(bytes: Buffer, path: string): Identity {
  const bad = (offset: number, reason: string): StorageFatalError => new StorageFatalError(`identity file ${path} is damaged at byte ${offset}: ${reason}`);
  if (bytes.length < IDENTITY_HEADER_BYTES) throw bad(bytes.length, `it is ${bytes.length} bytes, shorter than its header`);
  if (!bytes.subarray(0, 8).equals(IDENTITY_MAGIC)) throw bad(0, 'bad magic: not an identity file');
  const version = bytes.readUInt32LE(8);
  if (version !== IDENTITY_FORMAT_VERSION) throw bad(8, `unsupported format version ${version}`);
  const length = bytes.readUInt32LE(12);
  if (length > IDENTITY_JSON_BYTES_MAX || IDENTITY_HEADER_BYTES + length !== bytes.length) throw bad(12, `length ${length} does not match the file size ${bytes.length}`);
  const json = bytes.subarray(IDENTITY_HEADER_BYTES);
  if ((crc32(json) >>> 0) !== bytes.readUInt32LE(16)) throw bad(16, 'checksum mismatch');
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch (error) {
    throw bad(IDENTITY_HEADER_BYTES, `not JSON (${describeError(error)})`);
  }
  const record = value as Partial<Record<keyof Identity, unknown>> | null;
  if (typeof record !== 'object' || record === null) throw bad(IDENTITY_HEADER_BYTES, 'not a JSON object');
  const { clusterId, nodeId, createdAt } = record;
  if (typeof clusterId !== 'string' || typeof createdAt !== 'string' || typeof nodeId !== 'number' || !Number.isSafeInteger(nodeId) || nodeId < 1) {
    throw bad(IDENTITY_HEADER_BYTES, 'clusterId, nodeId or createdAt is missing or of the wrong type');
  }
  return { clusterId, nodeId, createdAt };
}

async function loadIdentity(fileSystem: FileSystem, directory: string): Promise<Identity | null> {
  const path = join(directory, IDENTITY_FILE);
  const bytes = await readFileIfExists(fileSystem, path);
  return bytes === null ? null : decodeIdentity(bytes, path);
}

async function storeIdentity(fileSystem: FileSystem, directory: string, identity: Identity): Promise<void> {
  await writeFileAtomically(fileSystem, directory, IDENTITY_FILE, encodeIdentity(identity));
}
