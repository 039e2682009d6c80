// The lmdb environment behind the state machine: one memory-mapped file holding several named
// databases, so the data lives in the page cache and off the JS heap, and one write transaction
// can change all of them atomically (the applied index commits with the data it produced).
//
// Durability, decided deliberately:
//
// - The Raft WAL is fsynced before anything is acknowledged, and on restart the runtime replays it
//   from the engine's appliedIndex. So an engine commit does not itself need to be durable; what
//   must hold is that the engine is never *corrupted*, whatever moment the process or the machine
//   dies, and that sync() really flushes before the runtime lets the WAL drop entries.
// - A process kill (SIGKILL, crash) keeps the kernel's page cache: every lmdb mode survives it,
//   because lmdb writes the new pages first and the meta page that points at them last.
// - A machine crash loses unflushed pages in any order. Under lmdb's MDB_NOSYNC (`noSync`) that
//   can corrupt the file: the meta page may reach the disk before the pages it points to, and
//   pages of the last flushed tree are recycled by later unflushed commits. So `noSync` is not our
//   default.
// - lmdb-js's `overlappingSync` (its default on Linux) is the mode built for exactly our case: a
//   commit marks its meta page "not yet flushed", pages of the last flushed snapshot are never
//   recycled until a newer one is flushed, and on open after a reboot (the boot id changed) lmdb
//   falls back to the last flushed snapshot. A machine crash therefore only rolls the engine back,
//   and the WAL replays what was lost. A process kill keeps the latest commit (same boot id).
// - The price: lmdb-js offers no way to defer the flush of a *synchronous* transaction (its
//   overlapping-sync commit path flushes on the committing thread right after releasing the write
//   lock), so each apply() ends with one fdatasync on the main thread. apply() takes every
//   committed entry of a Ready in one transaction, so this is one flush per Ready, like the WAL's.
//   bench/kvstore/apply.ts measures it: with a slow shared disk it, not the CPU, bounds throughput.
// - `unsafeNoSync: true` opens with lmdb's `noSync` instead: no flush per commit, sync() flushes.
//   A machine crash between syncs may corrupt the engine, so the name says so and it is opt-in.
// - A snapshot import writes into a temp environment with `noSync` ('bulk-load': a crash there only
//   leaves a temp directory that open() removes) and flushes it with a forced sync before the swap.
// - sync() is mdb_env_sync(force) on lmdb-js's worker thread: a real fdatasync of the data file,
//   whatever the mode.

import { open, type Database, type RootDatabase, type Transaction } from 'lmdb';

export type BinaryDb = Database<Buffer, Buffer>;

export type EngineMode = 'durable' | 'unsafe-no-sync' | 'bulk-load';

export interface EngineOptions {
  readonly mode: EngineMode;
  /** Initial map size; lmdb-js grows the map by itself when it fills. */
  readonly mapSizeBytes: number;
}

export const DEFAULT_MAP_SIZE_BYTES = 1024 * 1024 * 1024;

/** lmdb-js transaction flags (index.d.ts TransactionFlags). */
const TXN_ABORTABLE = 0x1;
const TXN_SYNCHRONOUS_COMMIT = 0x2;
const TXN_NO_SYNC_FLUSH = 0x10000;

const DB_NAMES = ['meta', 'live', 'history', 'revisions', 'sessions', 'results', 'sessionsByIndex', 'sessionsByTime'] as const;
export type DbName = (typeof DB_NAMES)[number];

/** The part of lmdb-js's root database our typings lack: env.sync with a callback runs off-thread. */
interface SyncableRoot {
  sync(callback: (error?: Error | null) => void): void;
}

/**
 * A pinned read view (an lmdb read transaction) handed to a long reader such as a snapshot export.
 * `valid` turns false when the engine is closed under it; the reader must then stop touching lmdb.
 */
export class ReadLease {
  private released = false;
  private invalidated = false;

  constructor(readonly view: Transaction, private readonly onRelease: (lease: ReadLease) => void) {}

  get valid(): boolean {
    return !this.released && !this.invalidated;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    if (!this.invalidated) this.view.done();
    this.onRelease(this);
  }

  /** The engine is closing: end the read transaction now, while lmdb can still do it. */
  invalidate(): void {
    if (this.released || this.invalidated) return;
    this.invalidated = true;
    this.view.done();
  }
}

export class Engine {
  readonly dbs: Readonly<Record<DbName, BinaryDb>>;
  private closed = false;
  private readonly leases = new Set<ReadLease>();
  private retirement: { readonly done: Promise<void>; readonly resolve: () => void } | null = null;

  private constructor(readonly directory: string, private readonly root: RootDatabase<Buffer, Buffer>, private readonly txnFlags: number) {
    const dbs = {} as Record<DbName, BinaryDb>;
    for (const name of DB_NAMES) dbs[name] = root.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary', compression: false, cache: false });
    this.dbs = dbs;
  }

  static open(directory: string, options: EngineOptions): Engine {
    const root = open<Buffer, Buffer>(directory, {
      // A directory (data.mdb, lock.mdb), even when its name has a dot (lmdb-js guesses otherwise).
      noSubdir: false,
      maxDbs: DB_NAMES.length + 2,
      mapSize: options.mapSizeBytes,
      keyEncoding: 'binary',
      encoding: 'binary',
      compression: false,
      // 'durable': flush-on-commit with lmdb-js's crash-safe meta protocol. The other two never
      // flush on commit; only sync() does.
      overlappingSync: options.mode === 'durable',
      noSync: options.mode !== 'durable',
      // Not needed for correctness; avoids a JS-side cache of decoded values on the heap.
      cache: false,
    });
    const flags = options.mode === 'durable' ? TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT | TXN_NO_SYNC_FLUSH : TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT;
    return new Engine(directory, root, flags);
  }

  /** Run `body` in one synchronous write transaction; a throw aborts it and nothing is written. */
  transact<T>(body: () => T): T {
    this.checkOpen();
    return this.root.transactionSync(body, this.txnFlags);
  }

  /** Make the next implicit read see the latest commit (after a failed transaction). */
  refreshReads(): void {
    this.checkOpen();
    this.root.resetReadTxn();
  }

  /** A read view pinned at the latest commit; the holder must release() it. */
  acquireReadLease(): ReadLease {
    this.checkOpen();
    const lease = new ReadLease(this.root.useReadTransaction(), (released) => {
      this.leases.delete(released);
      if (this.leases.size === 0 && this.retirement !== null) this.retirement.resolve();
    });
    this.leases.add(lease);
    return lease;
  }

  /**
   * Close once every lease is released: an engine replaced by a snapshot install keeps serving
   * the exports that were already reading it.
   */
  async retire(): Promise<void> {
    if (this.closed) return;
    if (this.leases.size > 0) {
      if (this.retirement === null) {
        let resolve = (): void => {};
        const done = new Promise<void>((r) => { resolve = r; });
        this.retirement = { done, resolve };
      }
      await this.retirement.done;
    }
    await this.close();
  }

  /** Flush everything committed so far to stable storage (mdb_env_sync with force, off-thread). */
  sync(): Promise<void> {
    this.checkOpen();
    const root = this.root as unknown as SyncableRoot;
    return new Promise<void>((resolve, reject) => {
      root.sync((error) => (error ? reject(error) : resolve()));
    });
  }

  /** Close now; leases still held are invalidated first (their readers fail at their next step). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const lease of this.leases) lease.invalidate();
    this.leases.clear();
    this.retirement?.resolve();
    await this.root.close();
  }

  get activeLeases(): number {
    return this.leases.size;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`the engine at ${this.directory} is closed`);
  }
}
