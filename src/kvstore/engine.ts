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
// - What we use: lmdb's classic commit with MDB_NOMETASYNC (`noMetaSync`), overlappingSync off.
//   A commit writes its new pages, fdatasyncs the data file ONCE, then writes the meta page that
//   points at them without flushing it. LMDB documents this as keeping integrity (atomicity and
//   consistency) while a machine crash "may undo the last committed transaction": the meta page
//   of commit N reaches the disk at the latest with commit N+1's fdatasync (same file), and the
//   pages of the last two snapshots are never recycled (mdb_find_oldest keeps txnid - 1), so
//   whichever meta page survives points at pages that are on disk. A rolled-back apply is what
//   the WAL replay is for; sync() (forced mdb_env_sync) flushes the last meta page too, so the
//   rule "engine durable up to X before the WAL drops X" still holds.
// - Why not lmdb-js's `overlappingSync` (its Linux default, which we used before): for a
//   *synchronous* transaction it flushes on the committing thread anyway, after the write lock is
//   released: an fdatasync of the data AND an O_DSYNC write of a separate "flushed" meta slot,
//   two device flushes per apply on the main thread instead of one. Measured with
//   bench/kvstore/engine-modes.ts on this machine: 0.27-0.42 ms vs 0.18-0.22 ms per commit at
//   the median over several runs (noSync: 0.03 ms). Its real advantage (the flush on lmdb-js's
//   write thread) needs asynchronous transactions, which would make apply() asynchronous.
//   (Upgrade note: an engine left by the overlappingSync build after a MACHINE crash should run
//   that build until its first commit, which builds on its last flushed snapshot; the classic
//   open here trusts the newest meta page. A process kill needs nothing.)
// - Why not `noSync` (MDB_NOSYNC): no flush at all per commit, but then nothing orders the meta
//   page after the pages it points to, and a machine crash can leave a corrupt file. And not
//   `noSync` together with `overlappingSync`: lmdb-js would then write its "flushed" meta slot
//   without any fdatasync behind it, a flushed marker that lies.
// - Batched commits (`commitIntervalMs` > 0, what a node runs with): even one fdatasync per apply
//   is most of an apply's cost, and with three nodes on one disk the flushes queue behind each
//   other and behind the WALs'. Like etcd's backend (which commits bbolt every 100 ms), the engine
//   then keeps ONE write transaction open and runs each transact() as a child transaction of it
//   (abortable on its own), committing the batch at most `commitIntervalMs` later, or sooner: at
//   sync(), before a read lease, at close, after BATCH_MAX_TRANSACTS. Reads on this thread go
//   through the open transaction, so they see every apply at once; other processes and read leases
//   see only committed batches. Durability is unchanged: what a crash (process or machine) loses
//   is an uncommitted batch, the WAL holds it and replays it from the committed applied index, and
//   sync() commits before it flushes, so the WAL is still compacted only behind durable state.
//   lmdb-js lets a read with an explicit transaction use the open write transaction instead, so
//   no batch stays open while a read lease is held: a lease commits the batch first, and while any
//   lease lives every transact() commits on its own. The batch commit (its pages and one
//   fdatasync) runs on the main thread about 5 times a second under load (at the node's 200 ms
//   interval), instead of a fraction of a ms several hundred times: under 64 writers, mostly under
//   4 ms since engine format 2, at most 18 ms in a 26 s trace (5-40 ms with format 1's index).
// - `unsafeNoSync: true` opens with lmdb's `noSync` instead: no flush per commit, sync() flushes.
//   A machine crash between syncs may corrupt the engine, so the name says so and it is opt-in.
// - A snapshot import writes into a temp environment with `noSync` ('bulk-load': a crash there only
//   leaves a temp directory that open() removes) and flushes it with a forced sync before the swap.
// - sync() is mdb_env_sync(force) on lmdb-js's worker thread: a real fdatasync of the data file,
//   whatever the mode.

import { ABORT, open, type Database, type RootDatabase, type Transaction } from 'lmdb';

export type BinaryDb = Database<Buffer, Buffer>;

export type EngineMode = 'durable' | 'unsafe-no-sync' | 'bulk-load';

export interface EngineOptions {
  readonly mode: EngineMode;
  /** Initial map size; lmdb-js grows the map by itself when it fills. */
  readonly mapSizeBytes: number;
  /** 0 (default): every transact() commits. Above 0: transact()s join a batch transaction that
   * commits at most this many ms later (see the top of this file). */
  readonly commitIntervalMs?: number;
}

/** A batch commits after this many transact()s, or once the transact()s declared this many bytes,
 * even before its interval is up: it bounds the dirty pages one lmdb transaction holds (lmdb
 * fails a transaction whose dirty list outgrows its limit, about 512 MiB of 4 KiB pages). */
export const BATCH_MAX_TRANSACTS = 2048;
export const BATCH_MAX_BYTES = 32 * 1024 * 1024;

export const DEFAULT_MAP_SIZE_BYTES = 1024 * 1024 * 1024;

/** lmdb-js transaction flags (index.d.ts TransactionFlags). */
const TXN_ABORTABLE = 0x1;
const TXN_SYNCHRONOUS_COMMIT = 0x2;

/**
 * The lmdb flush options of each mode (see the top of this file). 'durable' must never set
 * `noSync`: only the two modes that may be corrupted by a machine crash (and say so) do.
 */
export function lmdbSyncOptions(mode: EngineMode): { readonly overlappingSync: false; readonly noSync: boolean; readonly noMetaSync: boolean } {
  return mode === 'durable'
    ? { overlappingSync: false, noSync: false, noMetaSync: true }
    : { overlappingSync: false, noSync: true, noMetaSync: false };
}

const DB_NAMES = ['meta', 'live', 'history', 'graves', 'checkpoints', 'sessions', 'results', 'sessionsByIndex', 'sessionsByTime'] as const;
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

/** The open batch transaction: lmdb-js commits it when the promise its callback returned settles;
 * we hand it a thenable instead, so `finish` commits synchronously, when we choose. */
interface OpenBatch {
  readonly finish: (result: unknown) => unknown;
  readonly timer: NodeJS.Timeout;
  transacts: number;
  bytes: number;
}

export class Engine {
  readonly dbs: Readonly<Record<DbName, BinaryDb>>;
  private closed = false;
  private batch: OpenBatch | null = null;
  /** A batch commit that failed: its applies are lost from the engine (the WAL holds them), so
   * nothing may run on this engine any more; a restart replays from what is committed. */
  private failed: Error | null = null;
  /** Told when a batch commit fails on its timer, where no caller is there to receive the throw. */
  private failureListener: ((error: Error) => void) | null = null;
  private readonly leases = new Set<ReadLease>();
  private retirement: { readonly done: Promise<void>; readonly resolve: () => void } | null = null;

  private constructor(
    readonly directory: string,
    private readonly root: RootDatabase<Buffer, Buffer>,
    private readonly txnFlags: number,
    private readonly commitIntervalMs: number,
  ) {
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
      ...lmdbSyncOptions(options.mode),
      // Not needed for correctness; avoids a JS-side cache of decoded values on the heap.
      cache: false,
    });
    const commitIntervalMs = options.commitIntervalMs ?? 0;
    if (!(Number.isFinite(commitIntervalMs) && commitIntervalMs >= 0)) throw new RangeError(`commitIntervalMs must be a finite number >= 0, not ${commitIntervalMs}`);
    return new Engine(directory, root, TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT, commitIntervalMs);
  }

  /**
   * Run `body` in one synchronous write transaction; a throw aborts it and nothing is written.
   * With batching on, it is a child of the open batch: visible to reads here at once, committed
   * with the batch. `approximateBytes` (what the body writes, roughly) counts towards the batch's
   * byte bound.
   */
  transact<T>(body: () => T, approximateBytes = 0): T {
    this.checkOpen();
    if (this.batch !== null && this.leases.size > 0) throw new Error('engine invariant broken: a batch transaction is open while a read lease lives');
    if (this.commitIntervalMs > 0 && this.batch === null && this.leases.size === 0) this.openBatch();
    // Inside the open batch lmdb-js runs this as a child transaction (abortable on its own).
    const result = this.root.transactionSync(body, this.txnFlags);
    if (this.batch !== null) {
      this.batch.transacts += 1;
      this.batch.bytes += approximateBytes;
      if (this.batch.transacts >= BATCH_MAX_TRANSACTS || this.batch.bytes >= BATCH_MAX_BYTES) this.commitBatch();
    }
    return result;
  }

  /**
   * A database of an older engine format, which this one no longer opens (for a format migration;
   * lmdb creates it empty if it is not there).
   */
  legacyDb(name: string): BinaryDb {
    this.checkOpen();
    if ((DB_NAMES as readonly string[]).includes(name)) throw new Error(`${name} is a database of the current format, not a legacy one`);
    return this.root.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary', compression: false, cache: false });
  }

  /** Call `listener` when a batch commit fails on its timer (a failure in a call throws there). */
  onFailure(listener: (error: Error) => void): void {
    this.failureListener = listener;
  }

  /** The error of a batch commit that failed, after which the engine must not be used. */
  get failure(): Error | null {
    return this.failed;
  }

  /** Whether transact()s are waiting in an uncommitted batch (for tests and metrics). */
  get hasOpenBatch(): boolean {
    return this.batch !== null;
  }

  /** Commit the open batch now, if there is one. A failure leaves the engine unusable. */
  commitBatch(): void {
    const batch = this.batch;
    if (batch === null) return;
    this.batch = null;
    clearTimeout(batch.timer);
    try {
      batch.finish(undefined);
    } catch (error) {
      this.failed ??= error as Error;
      throw error;
    }
  }

  private openBatch(): void {
    let finish: ((result: unknown) => unknown) | null = null;
    const thenable = { then: (onSettled: (result: unknown) => unknown) => { finish = onSettled; } };
    // lmdb-js begins the write transaction, calls back, sees a thenable and keeps the transaction
    // open (its writeTxn) until the thenable settles: then it commits (or aborts on ABORT).
    this.root.transactionSync(() => thenable as unknown as Promise<void>, TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT);
    if (finish === null) throw new Error('lmdb-js did not keep the batch transaction open (its transactionSync contract changed)');
    const timer = setTimeout(() => {
      // A failure is kept in `failure` (the next use of the engine throws it) and reported at
      // once: a failed flush must stop the node now, not at its next apply.
      try {
        this.commitBatch();
      } catch (error) {
        this.failureListener?.(error as Error);
      }
    }, this.commitIntervalMs);
    timer.unref();
    this.batch = { finish, timer, transacts: 0, bytes: 0 };
  }

  /** Drop the open batch without committing it (the engine goes back to its last commit). */
  private abortBatch(): void {
    const batch = this.batch;
    if (batch === null) return;
    this.batch = null;
    clearTimeout(batch.timer);
    batch.finish(ABORT);
  }

  /** Make the next implicit read see the latest commit (after a failed transaction). */
  refreshReads(): void {
    this.checkOpen();
    this.root.resetReadTxn();
  }

  /** A read view pinned at the latest commit; the holder must release() it. */
  acquireReadLease(): ReadLease {
    this.checkOpen();
    // lmdb-js reads through an open write transaction even when given the lease's view: no batch
    // may be open while a lease lives (transact() opens none then).
    this.commitBatch();
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
    this.commitBatch();
    const root = this.root as unknown as SyncableRoot;
    return new Promise<void>((resolve, reject) => {
      root.sync((error) => (error ? reject(error) : resolve()));
    });
  }

  /** Close now; leases still held are invalidated first (their readers fail at their next step). */
  async close(): Promise<void> {
    if (this.closed) return;
    // What was applied is kept when it can be; if the commit fails the WAL still holds it.
    if (this.failed === null) {
      try { this.commitBatch(); } catch { this.abortQuietly(); }
    } else {
      this.abortQuietly();
    }
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

  private abortQuietly(): void {
    try { this.abortBatch(); } catch { /* the transaction is gone already */ }
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`the engine at ${this.directory} is closed`);
    if (this.failed !== null) throw new Error(`the engine at ${this.directory} failed to commit a batch: ${this.failed.message}`, { cause: this.failed });
  }
}
