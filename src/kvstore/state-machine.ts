// The replicated key-value state machine: etcd's data model (revisions, per-key versions, history
// with compaction) and exactly-once client sessions, on lmdb, with the data off the JS heap.
//
// Everything an apply changes, the applied index included, commits in one lmdb transaction, so a
// restart resumes exactly where the last commit left off and the runtime replays its WAL from
// there. Replicas must agree bit for bit on every answer, so apply reads nothing but the entries
// and the stored state: no clocks, no randomness, no configuration that could differ between nodes.

import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { silentLogger, type Logger } from '../common/logger.js';
import type { Entry } from '../raft/types.js';
import { CommandDecodeError, decodeCommand, type KvCommand } from './commands.js';
import { HistoryCompactor, WINDOW_REVISIONS } from './compaction.js';
import { DEFAULT_MAP_SIZE_BYTES, Engine, type EngineMode } from './engine.js';
import { CompactedError, FutureRevisionError, InvalidRevisionError, invariant, KvInvariantError } from './errors.js';
import { validateKey } from './limits.js';
import { migrateFormat1To2 } from './format-migration.js';
import { checkSchema, INITIAL_META, readFormatVersion, readMeta, writeMeta, writeSchema, type StateMeta } from './meta.js';
import { deleteKey, putKey, readAt, readLatest, type KeyValue } from './mvcc.js';
import type { CommandResult } from './results.js';
import { Sessions, type LogClock } from './sessions.js';
import { snapshotChunks } from './snapshot-export.js';
import { buildFromSnapshot } from './snapshot-import.js';
import { hashSteps, revisionHashSteps } from './state-hash.js';
import { StoreDirectory } from './store-directory.js';

export type { CommandResult } from './results.js';
export type { KeyValue } from './mvcc.js';

/**
 * History records physically compacted per apply: a few per entry applied, so removal keeps up
 * with the writes that create history (one record each) while no single apply carries a big
 * share of it. A flat 4,096 per apply made one apply in a few hundred delete thousands of records:
 * applies of 30-45 ms and batch commits of up to 140 ms (traced under a 64-client write load),
 * on every node at the same moment since they apply the same entries. The rest waits for later
 * applies or for runMaintenance() when the node is idle.
 */
export const COMPACTION_RECORDS_PER_ENTRY = 4;
export const COMPACTION_RECORDS_PER_APPLY_MIN = 32;
/** What runMaintenance() visits by default when nothing else is going on. */
export const COMPACTION_RECORDS_IDLE = 4096;
/**
 * The engine commit interval a node runs with (commitIntervalMs), like etcd's 100 ms backend
 * batch. A commit rewrites every page its batch touched, and puts land on pages spread over the
 * key space (the live table is keyed by user key), so a batch of 4x the
 * writes dirties far fewer than 4x the pages: under a 64-client write load, 200 ms instead of
 * 50 ms halved the main thread's time in batch commits (2.0 s -> 1.0 s per 26 s, traced), each
 * commit taking longer (p50 9 -> 16 ms). A restart replays at most this much of the log.
 */
export const NODE_ENGINE_COMMIT_INTERVAL_MS = 200;
/** Idle sessions looked at per apply. */
export const SESSION_SWEEP_PER_APPLY = 64;

export interface KvStateMachineOptions {
  readonly logger?: Logger;
  /** Initial lmdb map size; lmdb-js grows it when it fills. */
  readonly mapSizeBytes?: number;
  /**
   * Skip the engine's flush at each apply commit (lmdb `noSync`); only sync() flushes. A machine
   * crash between syncs can then corrupt the engine, not just roll it back. Never the default.
   */
  readonly unsafeNoSync?: boolean;
  /**
   * 0 (default): every apply commits to the engine before it returns. Above 0: applies are
   * batched into one engine commit at most this many ms apart (engine.ts explains why that is
   * safe): a crash then rolls the engine back to the last batch and the WAL replays the rest, so
   * only a caller that replays a WAL from appliedIndex may turn it on. sync() commits first.
   */
  readonly commitIntervalMs?: number;
  /** Revisions per physical compaction window (compaction.ts); tests make it small. */
  readonly compactionWindowRevisions?: number;
}

export interface EngineStats {
  readonly liveKeys: number;
  readonly historyRecords: number;
  /** Deleted keys whose tombstone is still in history. */
  readonly graves: number;
  /** Entries of the sparse per-key index (every tombstone and every 64th version of a key). */
  readonly checkpoints: number;
  readonly sessions: number;
  readonly sessionResults: number;
  /** History that a compaction made unreachable but that is not yet removed. */
  readonly compactionPending: boolean;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class KvStateMachine {
  private meta: StateMeta;
  private sessions: Sessions;
  /** Physical compaction and its in-memory plan for the current window (compaction.ts). */
  private compactor: HistoryCompactor;
  private closed = false;
  private importing = false;
  /** Set when the engine can no longer be trusted in this process (a failed flush, a snapshot
   * swap that failed half-way); a restart reopens what is on disk. */
  private broken: Error | null = null;
  private engineFailureListener: ((error: Error) => void) | null = null;
  /** Engines replaced by a snapshot install that still serve exports started before the swap. */
  private readonly retiring = new Set<Engine>();

  private constructor(
    private engine: Engine,
    private readonly directory: StoreDirectory,
    private readonly logger: Logger,
    private readonly mode: EngineMode,
    private readonly mapSizeBytes: number,
    private readonly commitIntervalMs: number,
    private readonly compactionWindowRevisions: number,
  ) {
    checkSchema(engine.dbs.meta);
    this.meta = readMeta(engine.dbs.meta);
    this.sessions = new Sessions(engine.dbs);
    this.compactor = new HistoryCompactor(compactionWindowRevisions);
  }

  static async open(path: string, options: KvStateMachineOptions = {}): Promise<KvStateMachine> {
    const logger = options.logger ?? silentLogger;
    const mapSizeBytes = options.mapSizeBytes ?? DEFAULT_MAP_SIZE_BYTES;
    const mode: EngineMode = options.unsafeNoSync === true ? 'unsafe-no-sync' : 'durable';
    const { directory, created } = await StoreDirectory.open(path);
    if (created) {
      // The first generation is built and flushed like an imported one, then named by CURRENT.
      const { generation, tempDirectory } = await directory.prepareNext();
      const fresh = Engine.open(tempDirectory, { mode: 'bulk-load', mapSizeBytes });
      try {
        fresh.transact(() => {
          writeSchema(fresh.dbs.meta);
          writeMeta(fresh.dbs.meta, INITIAL_META);
        });
        await fresh.sync();
      } finally {
        await fresh.close();
      }
      await directory.commit(generation, tempDirectory);
    }
    const commitIntervalMs = options.commitIntervalMs ?? 0;
    const engine = Engine.open(directory.liveEngineDirectory, { mode, mapSizeBytes, commitIntervalMs });
    let machine: KvStateMachine;
    try {
      if (readFormatVersion(engine.dbs.meta) === 1) {
        const startedMs = performance.now();
        const report = migrateFormat1To2(engine);
        await engine.sync();
        logger.warn('state machine engine migrated from format 1 to 2 (per-key revision index dropped)', { path, ...report, ms: Math.round(performance.now() - startedMs) });
      }
      machine = new KvStateMachine(engine, directory, logger, mode, mapSizeBytes, commitIntervalMs, options.compactionWindowRevisions ?? WINDOW_REVISIONS);
    } catch (error) {
      await engine.close();
      throw error;
    }
    if (mode === 'unsafe-no-sync') logger.warn('state machine engine opened WITHOUT a flush per apply: a machine crash may corrupt it', { path });
    logger.info(created ? 'state machine created' : 'state machine resumed', { path, generation: directory.generation, ...machine.meta });
    return machine;
  }

  get appliedIndex(): number {
    return this.meta.appliedIndex;
  }

  get revision(): number {
    return this.meta.revision;
  }

  get compactedRevision(): number {
    return this.meta.compactedRevision;
  }

  /**
   * Apply committed Raft entries in ONE lmdb write transaction. Entries at or below appliedIndex
   * are skipped (a replay after restart, or after a snapshot install that was ahead of the log).
   * Noop and config entries only advance appliedIndex. Returns the result of each command entry
   * applied by this call, keyed by log index. A throw means nothing of this call was applied.
   */
  apply(entries: readonly Entry[]): Map<number, CommandResult> {
    this.checkUsable();
    const results = new Map<number, CommandResult>();
    let first = 0;
    while (first < entries.length && entries[first].index <= this.meta.appliedIndex) first++;
    if (first === entries.length) return results;
    for (let i = first; i < entries.length; i++) {
      const expected = this.meta.appliedIndex + 1 + (i - first);
      if (entries[i].index !== expected) throw new KvInvariantError(`entries are not contiguous: expected index ${expected}, got ${entries[i].index}`);
    }
    const state: Mutable<StateMeta> = { ...this.meta };
    let bytes = 0;
    for (let i = first; i < entries.length; i++) bytes += entryDataBytes(entries[i]);
    this.commit(() => {
      for (let i = first; i < entries.length; i++) this.applyEntry(state, entries[i], results);
      this.maintain(state, COMPACTION_RECORDS_PER_APPLY_MIN + COMPACTION_RECORDS_PER_ENTRY * (entries.length - first), SESSION_SWEEP_PER_APPLY);
      writeMeta(this.engine.dbs.meta, state);
    }, bytes);
    // Only after the commit: a throw above leaves the cached meta as it was, like the engine.
    this.meta = state;
    return results;
  }

  /**
   * Do deferred physical work (history left by a compaction, idle sessions) in one bounded write
   * transaction. It changes no answer, so the runtime may call it whenever the node is idle.
   * Returns whether compaction work remains.
   */
  runMaintenance(compactionRecords: number = COMPACTION_RECORDS_IDLE, sessions: number = SESSION_SWEEP_PER_APPLY): { readonly compactionPending: boolean } {
    this.checkUsable();
    const state: Mutable<StateMeta> = { ...this.meta };
    this.commit(() => {
      this.maintain(state, compactionRecords, sessions);
      writeMeta(this.engine.dbs.meta, state);
    });
    this.meta = state;
    return { compactionPending: state.compactionCursor <= state.compactedRevision };
  }

  /** The key now (no revision), or as it was at `atRevision`. `revision` is the store's current one. */
  get(key: string, atRevision?: number): { readonly kv: KeyValue | null; readonly revision: number } {
    this.checkUsable();
    const problem = validateKey(key);
    if (problem !== null) throw Object.assign(new Error(problem.message), { code: problem.code });
    const { revision, compactedRevision } = this.meta;
    if (atRevision === undefined) return { kv: readLatest(this.engine.dbs, key), revision };
    if (!Number.isSafeInteger(atRevision) || atRevision < 1) throw new InvalidRevisionError(atRevision);
    if (atRevision > revision) throw new FutureRevisionError(atRevision, revision);
    if (atRevision < compactedRevision) throw new CompactedError(atRevision, compactedRevision);
    return { kv: readAt(this.engine.dbs, key, atRevision, compactedRevision), revision };
  }

  /** The number of live keys. */
  count(): number {
    this.checkUsable();
    return (this.engine.dbs.live.getStats() as { entryCount: number }).entryCount;
  }

  /** Entry counts of the engine's databases: for tests, metrics and operators. */
  stats(): EngineStats {
    this.checkUsable();
    const entries = (name: keyof Engine['dbs']): number => (this.engine.dbs[name].getStats() as { entryCount: number }).entryCount;
    return {
      liveKeys: entries('live'),
      historyRecords: entries('history'),
      graves: entries('graves'),
      checkpoints: entries('checkpoints'),
      sessions: entries('sessions'),
      sessionResults: entries('results'),
      compactionPending: this.meta.compactionCursor <= this.meta.compactedRevision,
    };
  }

  /**
   * A deterministic hash of the live key space and revision at the applied index, for replicas to
   * compare. Synchronous: for large states prefer hashAsync(), which does not stall the node.
   */
  hash(): { readonly appliedIndex: number; readonly revision: number; readonly hash: string } {
    this.checkUsable();
    const { appliedIndex, revision, compactedRevision } = this.meta;
    const steps = hashSteps({ live: this.engine.dbs.live, history: this.engine.dbs.history, revision, compactedRevision });
    let step = steps.next();
    while (step.done !== true) step = steps.next();
    return { appliedIndex, revision, hash: step.value };
  }

  /** The same hash, computed from a pinned read view a few thousand keys per event-loop turn. */
  async hashAsync(): Promise<{ readonly appliedIndex: number; readonly revision: number; readonly hash: string }> {
    this.checkUsable();
    const lease = this.engine.acquireReadLease();
    try {
      const { appliedIndex, revision, compactedRevision } = readMeta(this.engine.dbs.meta, lease.view);
      const steps = hashSteps({ live: this.engine.dbs.live, history: this.engine.dbs.history, revision, compactedRevision, transaction: lease.view });
      for (let step = steps.next(); ; step = steps.next()) {
        if (step.done === true) return { appliedIndex, revision, hash: step.value };
        await nextMacrotask();
        if (!lease.valid) throw new Error('hash aborted: the state machine was closed or replaced while it was being read');
      }
    } finally {
      lease.release();
    }
  }

  /**
   * A hash of the state as a read at `atRevision` sees it (state-hash.ts), from a view pinned now,
   * a few thousand index entries per event-loop turn. Replicas hash the same revision to compare
   * checkpoints whatever their apply batches were. null when this view cannot answer for that
   * revision (not reached yet, or compacted past it).
   */
  async hashAtRevisionAsync(atRevision: number): Promise<{ readonly revision: number; readonly hash: string } | null> {
    this.checkUsable();
    const lease = this.engine.acquireReadLease();
    try {
      const { revision, compactedRevision } = readMeta(this.engine.dbs.meta, lease.view);
      if (!Number.isSafeInteger(atRevision) || atRevision < 1 || atRevision > revision || atRevision < compactedRevision) return null;
      const { live, history, graves, checkpoints } = this.engine.dbs;
      const steps = revisionHashSteps({ live, history, graves, checkpoints, atRevision, compactedRevision, transaction: lease.view });
      for (let step = steps.next(); ; step = steps.next()) {
        if (step.done === true) return { revision: atRevision, hash: step.value };
        await nextMacrotask();
        if (!lease.valid) throw new Error('hash aborted: the state machine was closed or replaced while it was being read');
      }
    } finally {
      lease.release();
    }
  }

  /**
   * Call `listener` when the engine fails outside any call (a batched commit on its timer): the
   * applies of that batch are gone from the engine, so the runtime must stop (a restart replays
   * them from the WAL).
   */
  onEngineFailure(listener: (error: Error) => void): void {
    this.engineFailureListener = listener;
    this.engine.onFailure(listener);
  }

  /** Make everything applied so far durable; the runtime calls it before the WAL drops entries. */
  async sync(): Promise<void> {
    this.checkUsable();
    await this.engine.sync();
  }

  /**
   * A consistent read view streamed in chunks. The view is pinned now; it is released when the
   * stream ends, when its consumer stops early (the iterator's return), or at close().
   */
  exportSnapshot(): { readonly appliedIndex: number; readonly revision: number; readonly chunks: AsyncIterable<Uint8Array> } {
    this.checkUsable();
    const lease = this.engine.acquireReadLease();
    let meta: StateMeta;
    try {
      meta = readMeta(this.engine.dbs.meta, lease.view);
    } catch (error) {
      lease.release();
      throw error;
    }
    return { appliedIndex: meta.appliedIndex, revision: meta.revision, chunks: snapshotChunks(this.engine.dbs, lease, meta) };
  }

  /**
   * Replace the whole state from a snapshot stream: build a fresh environment next to the live one,
   * verify the stream's checksum, flush it, then switch CURRENT to it by rename. A stream that
   * breaks off or fails its checksum leaves the old state untouched and rejects.
   */
  async importSnapshot(chunks: AsyncIterable<Uint8Array>): Promise<{ readonly appliedIndex: number; readonly revision: number }> {
    this.checkUsable();
    if (this.importing) throw new Error('a snapshot import is already in progress');
    this.importing = true;
    try {
      const { generation, tempDirectory } = await this.directory.prepareNext();
      let meta: StateMeta;
      const target = Engine.open(tempDirectory, { mode: 'bulk-load', mapSizeBytes: this.mapSizeBytes });
      try {
        meta = await buildFromSnapshot(target, chunks);
        await target.sync();
        await target.close();
        if (this.closed) throw new Error('the state machine was closed during the snapshot import');
      } catch (error) {
        await target.close();
        await this.directory.discard(tempDirectory);
        this.logger.warn('snapshot import failed; the state is unchanged', { error });
        throw error;
      }
      await this.swapTo(generation, tempDirectory);
      invariant(this.meta.appliedIndex === meta.appliedIndex && this.meta.revision === meta.revision, 'the installed state does not match its snapshot header');
      this.logger.info('snapshot installed', { generation, ...this.meta });
      return { appliedIndex: meta.appliedIndex, revision: meta.revision };
    } finally {
      this.importing = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const engines = [this.engine, ...this.retiring];
    this.retiring.clear();
    for (const engine of engines) await engine.close();
  }

  // ---- apply ---------------------------------------------------------------------------------

  /**
   * Run one write transaction. When it throws, ask the engine what really happened: lmdb aborts a
   * transaction whose writes failed (a full disk), and the state machine stays usable; but if the
   * commit went through and only its flush failed, the data is visible yet not known to be on
   * disk, and a failed fsync stops the node (ARCHITECTURE.md, Durability).
   */
  private commit(body: () => void, approximateBytes = 0): void {
    const before = this.meta;
    try {
      this.engine.transact(body, approximateBytes);
    } catch (error) {
      // The compaction plan may count removals the rollback undid.
      this.compactor.forget();
      let stored: StateMeta | null = null;
      try {
        this.engine.refreshReads();
        stored = readMeta(this.engine.dbs.meta);
      } catch {
        // Cannot even read the meta back: treat as committed-but-unflushed.
      }
      if (stored === null || stored.appliedIndex !== before.appliedIndex || stored.compactionCursor !== before.compactionCursor) {
        if (stored !== null) this.meta = stored;
        this.broken = error as Error;
        this.logger.error('the engine committed but could not flush; the state machine is unusable until restart', { error });
      } else {
        this.logger.error('an engine write transaction failed and was rolled back', { error });
      }
      throw error;
    }
  }

  private applyEntry(state: Mutable<StateMeta>, entry: Entry, results: Map<number, CommandResult>): void {
    state.appliedIndex = entry.index;
    if (entry.kind !== 'command') return;
    let command: KvCommand;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      // Garbage or a command from a newer version: an error answer, the same on every replica.
      if (!(error instanceof CommandDecodeError)) throw error;
      results.set(entry.index, { kind: 'error', code: error.code, message: error.message });
      return;
    }
    if (command.proposedAtMs > state.newestProposedAtMs) state.newestProposedAtMs = command.proposedAtMs;
    if (command.op === 'compact') {
      results.set(entry.index, this.compact(state, command.revision));
      return;
    }
    if (command.client === undefined) {
      results.set(entry.index, this.mutate(state, command));
      return;
    }
    const clock: LogClock = { index: entry.index, newestProposedAtMs: state.newestProposedAtMs };
    const lookup = this.sessions.lookup(command.client, clock);
    if (lookup.kind !== 'fresh') {
      results.set(entry.index, lookup.result);
      return;
    }
    const result = this.mutate(state, command);
    this.sessions.record(command.client, clock, command.proposedAtMs, lookup.session, result);
    results.set(entry.index, result);
  }

  private mutate(state: Mutable<StateMeta>, command: Extract<KvCommand, { op: 'put' | 'delete' }>): CommandResult {
    const keyBytes = Buffer.from(command.key, 'utf8');
    const next = state.revision + 1;
    if (command.op === 'put') {
      const { createRevision, version } = putKey(this.engine.dbs, keyBytes, command.value, next);
      state.revision = next;
      return { kind: 'put', key: command.key, value: command.value, createRevision, modRevision: next, version, revision: next };
    }
    const deleted = deleteKey(this.engine.dbs, keyBytes, next);
    if (deleted) state.revision = next;
    return { kind: 'delete', key: command.key, deleted, revision: state.revision };
  }

  private compact(state: Mutable<StateMeta>, revision: number): CommandResult {
    if (revision > state.revision) {
      return { kind: 'error', code: 'FUTURE_REVISION', message: `Cannot compact at revision ${revision}: the store is at revision ${state.revision}.` };
    }
    if (revision <= state.compactedRevision) {
      return { kind: 'error', code: 'COMPACTED', message: `Revision ${revision} is already compacted (compacted revision ${state.compactedRevision}).` };
    }
    // Logically done now; the history it frees is removed a bounded amount at a time (compaction.ts).
    state.compactedRevision = revision;
    return { kind: 'compact', compactedRevision: revision, revision: state.revision };
  }

  private maintain(state: Mutable<StateMeta>, compactionRecords: number, sessions: number): void {
    if (state.compactionCursor <= state.compactedRevision && compactionRecords > 0) {
      state.compactionCursor = this.compactor.step(this.engine.dbs, state.compactionCursor, state.compactedRevision, compactionRecords).cursor;
    }
    if (sessions > 0) this.sessions.sweep({ index: state.appliedIndex, newestProposedAtMs: state.newestProposedAtMs }, sessions);
  }

  // ---- snapshot swap -------------------------------------------------------------------------

  private async swapTo(generation: number, tempDirectory: string): Promise<void> {
    const previousGeneration = this.directory.generation;
    let retired: Promise<void> = Promise.resolve();
    try {
      const liveDirectory = await this.directory.commit(generation, tempDirectory);
      const fresh = Engine.open(liveDirectory, { mode: this.mode, mapSizeBytes: this.mapSizeBytes, commitIntervalMs: this.commitIntervalMs });
      try {
        checkSchema(fresh.dbs.meta);
        const meta = readMeta(fresh.dbs.meta);
        const old = this.engine;
        this.engine = fresh;
        if (this.engineFailureListener !== null) fresh.onFailure(this.engineFailureListener);
        this.meta = meta;
        this.sessions = new Sessions(fresh.dbs);
        this.compactor = new HistoryCompactor(this.compactionWindowRevisions);
        retired = this.retire(old, previousGeneration);
        // With no export still reading it, the old generation goes now; otherwise when they finish.
        if (old.activeLeases > 0) retired = Promise.resolve();
      } catch (error) {
        await fresh.close();
        throw error;
      }
    } catch (error) {
      // CURRENT may already name the new generation while this process still holds the old one:
      // nothing here can be trusted any more. The node must stop; a restart opens what CURRENT says.
      this.broken = error as Error;
      this.logger.error('snapshot swap failed; the state machine is unusable until restart', { error });
      throw error;
    }
    await retired;
  }

  /** Close a replaced engine once its exports finish, then delete its directory. Never rejects. */
  private retire(engine: Engine, generation: number): Promise<void> {
    this.retiring.add(engine);
    return engine.retire()
      .then(async () => {
        this.retiring.delete(engine);
        if (!this.closed) await this.directory.remove(generation);
      })
      .catch((error: unknown) => this.logger.warn('could not remove a replaced state generation; open() will', { generation, error }));
  }

  private checkUsable(): void {
    if (this.closed) throw new Error('the state machine is closed');
    if (this.broken !== null) throw new Error(`the state machine is unusable until restart: ${this.broken.message}`);
    // A batch commit that failed took applies back out of the engine: nothing read here is true.
    const failure = this.engine.failure;
    if (failure !== null) throw new Error(`the state machine is unusable until restart: ${failure.message}`, { cause: failure });
  }
}

/** The bytes an entry's command carries (its share of an engine batch's byte bound). */
function entryDataBytes(entry: Entry): number {
  return entry.kind === 'command' ? entry.data.length : 0;
}
