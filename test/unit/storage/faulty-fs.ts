// A file system that sits in front of a real one and injects the faults storage must survive:
//
//   crash:  power loss. Every byte written to a file since its last successful fdatasync is lost
//           (optionally a random prefix survives: a torn write), and every creation, rename or
//           deletion not yet made durable by an fsync of its directory is undone.
//   ENOSPC: after a budget of bytes, a write stores what fits and fails with ENOSPC.
//   EIO:    fdatasync fails with EIO (and makes nothing durable).
//
// It models what the kernel promises, not more: the durable content of each file (as of its last
// fdatasync) and the durable listing of each directory (as of its last fsync) are tracked beside the
// real files, and `crash()` rewrites the real directory to what would be found after the reboot.
// Only directories touched through this object are modelled; files already there count as durable.

import { basename, dirname } from 'node:path';
import type { FileSystem, OpenMode, StoredFile } from '../../../src/storage/file-system.js';
import { nodeFileSystem, readAll } from '../../../src/storage/file-system.js';
import type { TestRng } from './support.js';

/** What a file holds now and what would survive a crash. Buffers are replaced, never mutated. */
interface Inode {
  data: Buffer;
  durableData: Buffer;
}

interface DirectoryState {
  current: Map<string, Inode>;
  durable: Map<string, Inode>;
}

function systemError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message} (injected)`), { code });
}

/** Thrown by every operation once the simulated machine is down. */
export class CrashError extends Error {
  override readonly name = 'CrashError';
  readonly code = 'ECRASHED';
}

export interface CrashOptions {
  /** Keep a random prefix of each file's unsynced bytes (a torn write), instead of none. */
  readonly tornWrites: boolean;
}

export class FaultyFileSystem implements FileSystem {
  private readonly directories = new Map<string, DirectoryState>();
  /** Bumped by every crash: handles opened before it are dead. */
  private epoch = 0;
  private down = false;
  private mutationsUntilCrash: number | null = null;

  /** Bytes that can still be written before writes fail with ENOSPC; null for no limit. */
  spaceLeftBytes: number | null = null;
  /** While true, every fdatasync fails with EIO. */
  failDatasync = false;
  readonly counts = { writes: 0, datasyncs: 0, directorySyncs: 0, crashes: 0 };

  constructor(private readonly inner: FileSystem = nodeFileSystem) {}

  /** The machine goes down at the `count`-th mutating call from now (1 = the next one). A write
   * that triggers it reaches the page cache first, so a torn prefix of it may survive. */
  crashAfterMutations(count: number): void {
    this.mutationsUntilCrash = count;
  }

  get isDown(): boolean {
    return this.down;
  }

  /** Power loss now; afterwards the real directories hold what a reboot would find. */
  async crash(rng: TestRng, options: CrashOptions): Promise<void> {
    this.down = true;
    this.epoch++;
    this.counts.crashes++;
    for (const [directory, state] of this.directories) {
      for (const name of await this.inner.readdir(directory)) {
        if (state.current.has(name) || state.durable.has(name)) await this.inner.unlink(`${directory}/${name}`);
      }
      const survivors = new Map<string, Inode>();
      for (const [name, inode] of state.durable) {
        const content = survivingContent(inode, rng, options);
        await writeWhole(this.inner, `${directory}/${name}`, content);
        survivors.set(name, { data: content, durableData: content });
      }
      state.current = new Map(survivors);
      state.durable = new Map(survivors);
      await this.inner.syncDirectory(directory);
    }
    this.down = false;
    this.mutationsUntilCrash = null;
  }

  // ---- FileSystem --------------------------------------------------------------------------------

  async open(path: string, mode: OpenMode): Promise<StoredFile> {
    this.checkUp();
    const directory = await this.track(dirname(path));
    const name = basename(path);
    if (mode === 'createExclusive') {
      this.beforeMutation();
      const file = await this.inner.open(path, mode);
      const inode: Inode = { data: Buffer.alloc(0), durableData: Buffer.alloc(0) };
      directory.current.set(name, inode);
      return new FaultyFile(this, file, inode, this.epoch);
    }
    const file = await this.inner.open(path, mode);
    let inode = directory.current.get(name);
    if (inode === undefined) {
      // A file created behind our back (not through this object): adopt it as durable.
      const data = await readAll(file);
      inode = { data, durableData: data };
      directory.current.set(name, inode);
      directory.durable.set(name, inode);
    }
    return new FaultyFile(this, file, inode, this.epoch);
  }

  async mkdir(path: string): Promise<void> {
    this.checkUp();
    await this.inner.mkdir(path);
    await this.track(path);
  }

  async readdir(path: string): Promise<string[]> {
    this.checkUp();
    await this.track(path);
    return this.inner.readdir(path);
  }

  async stat(path: string): Promise<{ readonly sizeBytes: number } | null> {
    this.checkUp();
    return this.inner.stat(path);
  }

  async rename(from: string, to: string): Promise<void> {
    this.checkUp();
    if (dirname(from) !== dirname(to)) throw new Error('the faulty file system models renames within one directory only');
    const directory = await this.track(dirname(from));
    this.beforeMutation();
    await this.inner.rename(from, to);
    const inode = directory.current.get(basename(from));
    directory.current.delete(basename(from));
    if (inode !== undefined) directory.current.set(basename(to), inode);
  }

  async unlink(path: string): Promise<void> {
    this.checkUp();
    const directory = await this.track(dirname(path));
    this.beforeMutation();
    await this.inner.unlink(path);
    directory.current.delete(basename(path));
  }

  async syncDirectory(path: string): Promise<void> {
    this.checkUp();
    const directory = await this.track(path);
    this.beforeMutation();
    await this.inner.syncDirectory(path);
    directory.durable = new Map(directory.current);
    this.counts.directorySyncs++;
  }

  // ---- used by FaultyFile ------------------------------------------------------------------------

  checkUp(epoch = this.epoch): void {
    if (this.down || epoch !== this.epoch) throw new CrashError('the simulated machine crashed');
  }

  /** Counts down to an armed crash; throws once the machine is down. */
  beforeMutation(): void {
    if (this.mutationsUntilCrash !== null) {
      this.mutationsUntilCrash--;
      if (this.mutationsUntilCrash <= 0) {
        this.mutationsUntilCrash = null;
        this.down = true;
        throw new CrashError('the simulated machine crashed');
      }
    }
  }

  /** Like beforeMutation, but a write that triggers the crash still lands in the page cache. */
  writeTriggersCrash(): boolean {
    if (this.mutationsUntilCrash === null) return false;
    this.mutationsUntilCrash--;
    if (this.mutationsUntilCrash > 0) return false;
    this.mutationsUntilCrash = null;
    return true;
  }

  /** How many of `sizeBytes` fit before the disk is full. */
  takeSpace(sizeBytes: number): number {
    if (this.spaceLeftBytes === null) return sizeBytes;
    const granted = Math.min(sizeBytes, this.spaceLeftBytes);
    this.spaceLeftBytes -= granted;
    return granted;
  }

  markDown(): void {
    this.down = true;
  }

  private async track(path: string): Promise<DirectoryState> {
    let state = this.directories.get(path);
    if (state !== undefined) return state;
    state = { current: new Map(), durable: new Map() };
    this.directories.set(path, state);
    if ((await this.inner.stat(path)) === null) return state;
    for (const name of await this.inner.readdir(path)) {
      const data = await readWholeIfFile(this.inner, `${path}/${name}`);
      if (data === null) continue;
      const inode: Inode = { data, durableData: data };
      state.current.set(name, inode);
      state.durable.set(name, inode);
    }
    return state;
  }
}

class FaultyFile implements StoredFile {
  constructor(
    private readonly fileSystem: FaultyFileSystem,
    private readonly file: StoredFile,
    private readonly inode: Inode,
    private readonly epoch: number,
  ) {}

  get path(): string {
    return this.file.path;
  }

  async read(buffer: Uint8Array, position: number): Promise<number> {
    this.fileSystem.checkUp(this.epoch);
    return this.file.read(buffer, position);
  }

  async writev(buffers: readonly Uint8Array[], position: number): Promise<void> {
    this.fileSystem.checkUp(this.epoch);
    const crashes = this.fileSystem.writeTriggersCrash();
    const whole = Buffer.concat(buffers);
    const granted = this.fileSystem.takeSpace(whole.length);
    const written = whole.subarray(0, granted);
    await this.file.writev([written], position);
    const end = Math.max(this.inode.data.length, position + written.length);
    const data = Buffer.alloc(end);
    this.inode.data.copy(data, 0);
    written.copy(data, position);
    this.inode.data = data;
    this.fileSystem.counts.writes++;
    if (crashes) {
      this.fileSystem.markDown();
      throw new CrashError('the simulated machine crashed during a write');
    }
    if (granted < whole.length) throw systemError('ENOSPC', `no space left on device writing ${whole.length} bytes to ${this.path}`);
  }

  /**
   * O_DSYNC: the bytes written become durable, and nothing else does. Unsynced bytes between the
   * durable end and `position` read as zeros after a crash (a hole), which recovery must call damage:
   * a caller that forgot to write them again gets caught.
   */
  async writevDurable(buffers: readonly Uint8Array[], position: number): Promise<void> {
    await this.writev(buffers, position);
    if (this.fileSystem.failDatasync) throw systemError('EIO', `i/o error on an O_DSYNC write to ${this.path}`);
    const whole = Buffer.concat(buffers);
    const durable = Buffer.alloc(Math.max(this.inode.durableData.length, position + whole.length));
    this.inode.durableData.copy(durable, 0);
    whole.copy(durable, position);
    this.inode.durableData = durable;
    this.fileSystem.counts.datasyncs++;
  }

  async datasync(): Promise<void> {
    this.fileSystem.checkUp(this.epoch);
    this.fileSystem.beforeMutation();
    if (this.fileSystem.failDatasync) throw systemError('EIO', `i/o error on fdatasync of ${this.path}`);
    await this.file.datasync();
    this.inode.durableData = this.inode.data;
    this.fileSystem.counts.datasyncs++;
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.fileSystem.checkUp(this.epoch);
    this.fileSystem.beforeMutation();
    await this.file.truncate(sizeBytes);
    const data = Buffer.alloc(sizeBytes);
    this.inode.data.copy(data, 0, 0, Math.min(sizeBytes, this.inode.data.length));
    this.inode.data = data;
  }

  async sizeBytes(): Promise<number> {
    this.fileSystem.checkUp(this.epoch);
    return this.file.sizeBytes();
  }

  async close(): Promise<void> {
    // Closing is always allowed: the real descriptor must not leak, even after a crash.
    await this.file.close();
  }
}

/** After power loss: the synced content, plus (maybe) a prefix of what was appended after it. A
 * shrink or overwrite that was never synced is simply undone. */
function survivingContent(inode: Inode, rng: TestRng, options: CrashOptions): Buffer {
  const durable = inode.durableData;
  const current = inode.data;
  if (!options.tornWrites) return durable;
  const extendsDurable = current.length > durable.length && current.subarray(0, durable.length).equals(durable);
  if (!extendsDurable) return durable;
  const kept = rng.int(0, current.length - durable.length + 1);
  return current.subarray(0, durable.length + kept);
}

async function writeWhole(fileSystem: FileSystem, path: string, content: Buffer): Promise<void> {
  const file = await fileSystem.open(path, 'createExclusive');
  try {
    await file.writev([content], 0);
    await file.datasync();
  } finally {
    await file.close();
  }
}

async function readWholeIfFile(fileSystem: FileSystem, path: string): Promise<Buffer | null> {
  let file: StoredFile;
  try {
    file = await fileSystem.open(path, 'read');
  } catch {
    return null;
  }
  try {
    return await readAll(file);
  } catch {
    return null; // a directory: EISDIR on read
  } finally {
    await file.close();
  }
}

/** The real file system minus its real fsyncs: under a FaultyFileSystem, durability is modelled, so
 * paying for the disk's flushes would only slow long randomized runs down. */
export function withoutRealSyncs(inner: FileSystem = nodeFileSystem): FileSystem {
  return {
    ...inner,
    open: async (path, mode) => {
      const file = await inner.open(path, mode);
      return {
        path: file.path,
        read: (buffer, position) => file.read(buffer, position),
        writev: (buffers, position) => file.writev(buffers, position),
        writevDurable: (buffers, position) => file.writev(buffers, position),
        datasync: async () => {},
        truncate: (sizeBytes) => file.truncate(sizeBytes),
        sizeBytes: () => file.sizeBytes(),
        close: () => file.close(),
      };
    },
    syncDirectory: async () => {},
  };
}
