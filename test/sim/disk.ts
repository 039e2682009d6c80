// A node's simulated disk. Writes land in an unsynced buffer (the page cache) and become durable
// only when a sync completes; a crash keeps the durable state plus, at random, a prefix of the
// unsynced writes (the page cache may have reached the platter in order, like a write-ahead log whose
// torn tail is cut off). Each write is atomic. The disk also enforces the storage side of the core's
// contract (entries contiguous, never past the end of the log) and reports breaches.

import type { Entry, HardState, Index, Membership, RaftInitialState, SnapshotMeta, Term } from '../../src/raft/types.js';
import { emptyImage, type KvImage } from './kv.js';
import type { Rng } from './rng.js';

export type DiskWrite =
  /** Install a snapshot received from the leader (Raft paper, figure 13, steps 6-7). */
  | { readonly kind: 'snapshot'; readonly meta: SnapshotMeta; readonly image: KvImage }
  /** Truncate the log from `entries[0].index`, then append `entries`. */
  | { readonly kind: 'entries'; readonly entries: readonly Entry[] }
  | { readonly kind: 'hardState'; readonly hardState: HardState };

/** One consistent view of what is stored: either the durable state or durable plus unsynced. */
export class StoredState {
  hardState: HardState;
  snapshot: SnapshotMeta;
  image: KvImage;
  /** Log entries; `log[k].index === logStart + k`. */
  log: Entry[];
  logStart: Index;

  constructor(hardState: HardState, snapshot: SnapshotMeta, image: KvImage, log: Entry[], logStart: Index) {
    this.hardState = hardState;
    this.snapshot = snapshot;
    this.image = image;
    this.log = log;
    this.logStart = logStart;
  }

  static fresh(membership: Membership): StoredState {
    return new StoredState(
      { term: 0, votedFor: 0, commitIndex: 0 },
      { index: 0, term: 0, membership },
      emptyImage(membership),
      [],
      1,
    );
  }

  clone(): StoredState {
    return new StoredState(this.hardState, this.snapshot, this.image, this.log.slice(), this.logStart);
  }

  /** The last index held: the last log entry, or the snapshot when the log ends before it. */
  get lastIndex(): Index {
    return Math.max(this.logStart + this.log.length - 1, this.snapshot.index);
  }

  entryAt(index: Index): Entry | undefined {
    return index >= this.logStart ? this.log[index - this.logStart] : undefined;
  }

  /** The term at `index` if it is known: held in the log, or the snapshot's own index (or 0). */
  termAt(index: Index): Term | undefined {
    if (index === 0) return 0;
    const entry = this.entryAt(index);
    if (entry !== undefined) return entry.term;
    if (index === this.snapshot.index) return this.snapshot.term;
    return undefined;
  }

  /** True when `index` is covered: in the snapshot or in the log. */
  holds(index: Index, term: Term): boolean {
    if (index <= this.snapshot.index) return true;
    return this.entryAt(index)?.term === term;
  }

  /** Applies one write; returns a description of a contract breach, or null. */
  apply(write: DiskWrite): string | null {
    switch (write.kind) {
      case 'hardState':
        this.hardState = write.hardState;
        return null;
      case 'entries':
        return this.appendEntries(write.entries);
      case 'snapshot':
        return this.installSnapshot(write.meta, write.image);
    }
  }

  private appendEntries(entries: readonly Entry[]): string | null {
    const first = entries[0];
    if (first === undefined) return null;
    for (let k = 1; k < entries.length; k++) {
      if ((entries[k] as Entry).index !== first.index + k) {
        return `entries to persist are not contiguous: ${entries.map((e) => e.index).join(',')}`;
      }
    }
    const lastIndex = this.lastIndex;
    if (first.index > lastIndex + 1) {
      return `entries to persist start at ${first.index}, past the end of the stored log (${lastIndex})`;
    }
    if (first.index <= this.snapshot.index) {
      return `entries to persist start at ${first.index}, inside the stored snapshot (${this.snapshot.index})`;
    }
    if (this.log.length === 0) this.logStart = first.index;
    // The log may start after first.index only if it is empty after the snapshot; cut from there.
    const keep = Math.max(0, first.index - this.logStart);
    this.log.length = Math.min(this.log.length, keep);
    if (this.log.length === 0) this.logStart = first.index;
    for (const entry of entries) this.log.push(entry);
    return null;
  }

  private installSnapshot(meta: SnapshotMeta, image: KvImage): string | null {
    if (image.index !== meta.index || image.term !== meta.term) {
      return `snapshot ${meta.index}/${meta.term} persisted with an image of ${image.index}/${image.term}`;
    }
    if (meta.index < this.snapshot.index) {
      return `snapshot ${meta.index}/${meta.term} persisted over a newer one (${this.snapshot.index}/${this.snapshot.term})`;
    }
    // Figure 13: if the log holds the snapshot's last entry, keep what follows; else drop the log.
    const matching = this.entryAt(meta.index)?.term === meta.term;
    if (matching) {
      this.log = this.log.slice(meta.index + 1 - this.logStart);
    } else {
      this.log = [];
    }
    this.logStart = meta.index + 1;
    this.snapshot = meta;
    this.image = image;
    return null;
  }

  /** A snapshot the node took itself: the log is untouched (compaction is a separate step). */
  saveLocalSnapshot(meta: SnapshotMeta, image: KvImage): void {
    this.snapshot = meta;
    this.image = image;
  }

  /** Drops log entries before `index`. */
  compactBefore(index: Index): void {
    const drop = Math.min(this.log.length, index - this.logStart);
    if (drop <= 0) return;
    this.log = this.log.slice(drop);
    this.logStart += drop;
  }

  /** What a restarted node starts from. */
  initialState(): RaftInitialState {
    return {
      hardState: this.hardState,
      snapshot: this.snapshot,
      entries: this.log.slice(),
      appliedIndex: this.snapshot.index,
    };
  }
}

export interface DiskStats {
  writes: number;
  syncs: number;
  unsyncedLostOnCrash: number;
  unsyncedKeptOnCrash: number;
}

export class SimDisk {
  /** What survives a crash for sure. */
  durable: StoredState;
  /** What a reader sees now: durable plus unsynced writes. */
  current: StoredState;
  private unsynced: DiskWrite[] = [];
  /** Writes ever made, and how many of them reached `durable` (by sync or luck at a crash). */
  private writtenCount = 0;
  private settledCount = 0;
  readonly stats: DiskStats = { writes: 0, syncs: 0, unsyncedLostOnCrash: 0, unsyncedKeptOnCrash: 0 };

  constructor(
    membership: Membership,
    private readonly onContractBreach: (detail: string) => void,
  ) {
    this.durable = StoredState.fresh(membership);
    this.current = this.durable.clone();
  }

  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  write(write: DiskWrite): void {
    this.stats.writes++;
    const breach = this.current.apply(write);
    if (breach !== null) this.onContractBreach(breach);
    this.unsynced.push(write);
    this.writtenCount++;
  }

  /** Starts a sync of everything written so far; pass the token to `completeSync` when it is done. */
  startSync(): number {
    this.stats.syncs++;
    return this.writtenCount;
  }

  /** The sync started with `token` finished: every write made before it started is durable now. */
  completeSync(token: number): void {
    const count = Math.min(token - this.settledCount, this.unsynced.length);
    if (count <= 0) return;
    for (let k = 0; k < count; k++) this.durable.apply(this.unsynced[k] as DiskWrite);
    this.unsynced = this.unsynced.slice(count);
    this.settledCount += count;
  }

  /** Power loss: a random prefix of the unsynced writes may have made it; the rest is gone. */
  crash(rng: Pick<Rng, 'chance' | 'intBetween'>): void {
    const kept = this.unsynced.length === 0 || rng.chance(0.5) ? 0 : rng.intBetween(0, this.unsynced.length);
    for (let k = 0; k < kept; k++) this.durable.apply(this.unsynced[k] as DiskWrite);
    this.stats.unsyncedKeptOnCrash += kept;
    this.stats.unsyncedLostOnCrash += this.unsynced.length - kept;
    this.unsynced = [];
    this.settledCount = this.writtenCount;
    this.current = this.durable.clone();
  }

  /** A snapshot the node took of its own state machine: written, fsynced and renamed at once. */
  saveLocalSnapshot(meta: SnapshotMeta, image: KvImage): void {
    this.durable.saveLocalSnapshot(meta, image);
    this.current.saveLocalSnapshot(meta, image);
  }

  compactBefore(index: Index): void {
    this.durable.compactBefore(index);
    this.current.compactBefore(index);
  }
}
