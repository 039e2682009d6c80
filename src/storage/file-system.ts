// The narrow slice of file-system I/O that storage uses, behind an interface, so that tests can put a
// fault-injecting implementation in between (lost unsynced bytes on a crash, torn writes, ENOSPC, EIO
// on fdatasync) and exercise the same code production runs. The real implementation is a thin layer
// over node:fs/promises; all positions are explicit, so no call depends on a hidden file offset.

import { constants, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode } from './errors.js';

/** read: an existing file, read-only. readWrite: an existing file. createExclusive: a new file; fails
 * with EEXIST if the name is taken (the 'wx' flag), which is what makes lock files work. */
export type OpenMode = 'read' | 'readWrite' | 'createExclusive';

export interface StoredFile {
  readonly path: string;
  /** Reads up to `buffer.byteLength` bytes from byte `position`; returns how many were read (0 at the end). */
  read(buffer: Uint8Array, position: number): Promise<number>;
  /** Writes every byte of `buffers`, in order, from byte `position` (one pwritev, repeated only if the
   * kernel wrote part of it). On failure some prefix may have been written; the caller cleans up. */
  writev(buffers: readonly Uint8Array[], position: number): Promise<void>;
  /**
   * Like writev, and resolves only once these bytes (and the file size they need) are on stable
   * storage: the write goes through a second descriptor opened with O_DSYNC, so the write and its
   * flush are one system call (one thread-pool round trip instead of two, and no separate fdatasync
   * waiting behind the other members' flushes). It covers ONLY these bytes: earlier writev()s not
   * yet synced are not made durable by it (the log never leaves any: every save is synced).
   */
  writevDurable(buffers: readonly Uint8Array[], position: number): Promise<void>;
  /** fdatasync: the data written so far (and the size) is on stable storage when this resolves. */
  datasync(): Promise<void>;
  truncate(sizeBytes: number): Promise<void>;
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<StoredFile>;
  /** Creates the directory and any missing parents; does nothing if it exists. */
  mkdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** The size of a file, or null when nothing has that name. */
  stat(path: string): Promise<{ readonly sizeBytes: number } | null>;
  /** Atomically replaces `to` with `from` (same directory); durable once the directory is synced. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync of a directory: makes creations, renames and deletions in it durable. */
  syncDirectory(path: string): Promise<void>;
}

const OPEN_FLAGS: Record<OpenMode, string> = { read: 'r', readWrite: 'r+', createExclusive: 'wx+' };

class NodeStoredFile implements StoredFile {
  /** The O_DSYNC descriptor of writevDurable, opened at its first use. */
  private durableHandle: Promise<FileHandle> | null = null;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  async read(buffer: Uint8Array, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, 0, buffer.byteLength, position);
    return bytesRead;
  }

  async writev(buffers: readonly Uint8Array[], position: number): Promise<void> {
    await writeAll(this.handle, this.path, buffers, position);
  }

  async writevDurable(buffers: readonly Uint8Array[], position: number): Promise<void> {
    // Opened on the path while this file is open: storage never renames a file it is writing.
    this.durableHandle ??= open(this.path, constants.O_WRONLY | constants.O_DSYNC);
    await writeAll(await this.durableHandle, this.path, buffers, position);
  }

  async datasync(): Promise<void> {
    await this.handle.datasync();
  }

  async truncate(sizeBytes: number): Promise<void> {
    await this.handle.truncate(sizeBytes);
  }

  async sizeBytes(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async close(): Promise<void> {
    const durable = this.durableHandle;
    this.durableHandle = null;
    // Whatever went through the O_DSYNC descriptor is on disk already: closing it cannot lose data.
    try {
      if (durable !== null) await durable.then((handle) => handle.close(), () => {});
    } finally {
      await this.handle.close();
    }
  }
}

/** Every byte of `buffers` from `position`: one pwritev, repeated only if the kernel wrote part. */
async function writeAll(handle: FileHandle, path: string, buffers: readonly Uint8Array[], position: number): Promise<void> {
  let pending = buffers.filter((buffer) => buffer.byteLength > 0);
  let at = position;
  // pwritev may write less than asked (a signal, a nearly full disk, more than IOV_MAX buffers);
  // carry on from where it stopped until everything is written or it reports an error.
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, at);
    if (bytesWritten <= 0) throw Object.assign(new Error(`write to ${path} made no progress`), { code: 'EIO' });
    at += bytesWritten;
    pending = skipBytes(pending, bytesWritten);
  }
}

/** The buffers left after the first `count` bytes were written. */
function skipBytes(buffers: readonly Uint8Array[], count: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = count;
  for (const buffer of buffers) {
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

/** The real file system. */
export const nodeFileSystem: FileSystem = {
  async open(path, mode) {
    return new NodeStoredFile(path, await open(path, OPEN_FLAGS[mode], 0o644));
  },
  async mkdir(path) {
    await mkdir(path, { recursive: true, mode: 0o755 });
  },
  async readdir(path) {
    return readdir(path);
  },
  async stat(path) {
    try {
      return { sizeBytes: (await stat(path)).size };
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw error;
    }
  },
  async rename(from, to) {
    await rename(from, to);
  },
  async unlink(path) {
    await unlink(path);
  },
  async syncDirectory(path) {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Reads a whole open file in large chunks (one syscall per chunk, not per record). */
export async function readAll(file: StoredFile, chunkBytes = 8 * 1024 * 1024): Promise<Buffer> {
  const sizeBytes = await file.sizeBytes();
  const buffer = Buffer.allocUnsafe(sizeBytes);
  let filled = 0;
  while (filled < sizeBytes) {
    const count = await file.read(buffer.subarray(filled, Math.min(sizeBytes, filled + chunkBytes)), filled);
    if (count === 0) break;
    filled += count;
  }
  return filled === sizeBytes ? buffer : buffer.subarray(0, filled);
}

/** Reads a whole file by name, or returns null when it does not exist. */
export async function readFileIfExists(fileSystem: FileSystem, path: string): Promise<Buffer | null> {
  let file: StoredFile;
  try {
    file = await fileSystem.open(path, 'read');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
  try {
    return await readAll(file);
  } finally {
    await file.close();
  }
}

/**
 * Replaces `directory/name` with `bytes` so that after a crash it holds either the old content or
 * the new, never a mix: a temp file written and fdatasynced, renamed over it, the directory fsynced.
 * A temp file left by an earlier crash is garbage (the real file was never replaced by it).
 */
export async function writeFileAtomically(fileSystem: FileSystem, directory: string, name: string, bytes: Buffer): Promise<void> {
  const temp = join(directory, `${name}.tmp`);
  if ((await fileSystem.stat(temp)) !== null) await fileSystem.unlink(temp);
  const file = await fileSystem.open(temp, 'createExclusive');
  try {
    await file.writev([bytes], 0);
    await file.datasync();
  } finally {
    await file.close();
  }
  await fileSystem.rename(temp, join(directory, name));
  await fileSystem.syncDirectory(directory);
}
