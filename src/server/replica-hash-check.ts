// Replica hash check (ARCHITECTURE.md, Durability): replicas check now and then that they hold the
// same state, and a mismatch is raised loudly.
//
// Checkpoints are revisions, not applied indexes: every multiple of `everyRevisions` is a
// checkpoint, and each node hashes the state as a read at that revision sees it
// (KvStateMachine.hashAtRevisionAsync, like etcd's HashKV). That state is fixed by the log alone,
// so nodes that applied in different batches, restarted, or installed a snapshot still hash the
// same bytes for the same checkpoint. Each node keeps its last few checkpoints, publishes them in
// its status answer, and compares them with every other member's now and then. A mismatch is
// logged at level error with 'ALARM' and /cluster/status reports it until the process restarts (a
// restarted node checks again at its next checkpoint). The hashes of all the nodes that answered
// vote: when a strict majority of them agree, the nodes outside it are the suspects, and only a
// suspect's GET /health answers 503 (a load balancer then drops the damaged replica, not the whole
// cluster); without such a majority every node that sees the mismatch is unhealthy.

import type { Logger } from '../common/logger.js';

/** Checkpoints a node remembers (and publishes). */
export const CHECKPOINTS_KEPT = 16;
/** Alarms a node remembers; the first ones matter most, later ones are logged only. */
export const ALARMS_KEPT = 16;

export interface HashCheckpoint {
  readonly revision: number;
  readonly hash: string;
}

export interface ReplicaHashAlarm {
  readonly revision: number;
  readonly localNodeId: number;
  readonly localHash: string;
  readonly peerNodeId: number;
  readonly peerHash: string;
  /** The node whose hash the majority of the nodes compared does not share; 0 when no strict
   * majority agrees (this node cannot tell which replica is damaged). */
  readonly suspect: number;
  readonly detectedAt: string;
}

/** What the check needs of the state machine. */
export interface HashableState {
  readonly revision: number;
  readonly compactedRevision: number;
  hashAtRevisionAsync(revision: number): Promise<HashCheckpoint | null>;
}

export interface ReplicaHashReport {
  readonly everyRevisions: number;
  readonly checkpoints: readonly HashCheckpoint[];
  readonly alarms: readonly ReplicaHashAlarm[];
  /** Comparisons with a peer's checkpoints made so far. */
  readonly comparisons: number;
}

export interface PeerCheckpoints {
  readonly nodeId: number;
  readonly checkpoints: readonly HashCheckpoint[];
}

export interface ReplicaHashCheckDeps {
  readonly nodeId: number;
  /** A checkpoint every this many revisions. */
  readonly everyRevisions: number;
  readonly state: HashableState;
  readonly logger: Logger;
}

/** The checkpoint to hash next: the oldest multiple of `every` above `lastHashed` that is reached
 * and still readable, skipping to the newest few when far behind. null when none is due. */
export function nextCheckpoint(revision: number, compactedRevision: number, lastHashed: number, every: number, backlogMax = 4): number | null {
  const newest = Math.floor(revision / every) * every;
  if (newest < 1 || newest <= lastHashed) return null;
  let candidate = Math.max(lastHashed + every, newest - (backlogMax - 1) * every);
  // Compaction past a checkpoint makes it unanswerable here; take the first one still readable.
  if (candidate < compactedRevision) candidate = Math.ceil(compactedRevision / every) * every;
  return candidate <= newest ? candidate : null;
}

/** Mismatches between our checkpoints and a peer's: same revision, different hash. */
export function mismatches(ours: readonly HashCheckpoint[], theirs: readonly HashCheckpoint[]): { revision: number; ours: string; theirs: string }[] {
  const byRevision = new Map(ours.map((checkpoint) => [checkpoint.revision, checkpoint.hash]));
  const found: { revision: number; ours: string; theirs: string }[] = [];
  for (const checkpoint of theirs) {
    const hash = byRevision.get(checkpoint.revision);
    if (hash !== undefined && hash !== checkpoint.hash) found.push({ revision: checkpoint.revision, ours: hash, theirs: checkpoint.hash });
  }
  return found;
}

/** The hash a strict majority of the nodes that hashed `revision` share (this node's included), or null. */
function majorityHash(revision: number, ours: string, peers: readonly PeerCheckpoints[]): string | null {
  const votes = new Map<string, number>([[ours, 1]]);
  let voters = 1;
  for (const peer of peers) {
    const checkpoint = peer.checkpoints.find((c) => c.revision === revision);
    if (checkpoint === undefined) continue;
    voters++;
    votes.set(checkpoint.hash, (votes.get(checkpoint.hash) ?? 0) + 1);
  }
  for (const [hash, count] of votes) if (2 * count > voters) return hash;
  return null;
}

export class ReplicaHashCheck {
  private readonly kept: HashCheckpoint[] = [];
  private readonly raised: ReplicaHashAlarm[] = [];
  /** "peer@revision" of every mismatch raised, so one is logged once. */
  private readonly raisedKeys = new Set<string>();
  private lastHashed = 0;
  private hashing = false;
  private stopped = false;
  private compared = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: ReplicaHashCheckDeps) {
    if (!Number.isSafeInteger(deps.everyRevisions) || deps.everyRevisions < 1) throw new RangeError(`everyRevisions must be a positive integer, not ${deps.everyRevisions}`);
  }

  /** Called after each Ready: starts hashing a checkpoint that became due (one at a time). */
  afterApply(): void {
    if (this.hashing || this.stopped) return;
    const { revision, compactedRevision } = this.deps.state;
    const due = nextCheckpoint(revision, compactedRevision, this.lastHashed, this.deps.everyRevisions);
    if (due === null) return;
    this.hashing = true;
    this.lastHashed = due;
    // hashAtRevisionAsync pins its read view before its first await, i.e. right here.
    this.deps.state.hashAtRevisionAsync(due).then(
      (checkpoint) => {
        if (checkpoint === null) return; // compacted past it meanwhile: skipped
        this.kept.push(checkpoint);
        if (this.kept.length > CHECKPOINTS_KEPT) this.kept.shift();
        this.deps.logger.debug('replica hash checkpoint', { revision: checkpoint.revision, hash: checkpoint.hash });
      },
      (error: unknown) => {
        if (!this.stopped) this.deps.logger.warn('replica hash checkpoint failed', { revision: due, error: (error as Error).message });
      },
    ).finally(() => {
      this.hashing = false;
    });
  }

  /** Compare our checkpoints with one peer's (a round of one peer: a mismatch is undecided). */
  compare(peer: PeerCheckpoints): readonly ReplicaHashAlarm[] {
    return this.compareRound([peer]);
  }

  /**
   * Compare our checkpoints with the peers' of one round; raises (and returns) the new mismatches.
   * For each mismatching revision the hashes of this node and the peers that have it vote.
   */
  compareRound(peers: readonly PeerCheckpoints[]): readonly ReplicaHashAlarm[] {
    const others = peers.filter((peer) => peer.nodeId !== this.deps.nodeId);
    this.compared += others.length;
    const fresh: ReplicaHashAlarm[] = [];
    for (const peer of others) {
      for (const found of mismatches(this.kept, peer.checkpoints)) {
        const key = `${peer.nodeId}@${found.revision}`;
        const majority = majorityHash(found.revision, found.ours, others);
        const suspect = majority === null ? 0 : majority === found.ours ? peer.nodeId : this.deps.nodeId;
        if (this.raisedKeys.has(key)) {
          // Raised already; a round with more nodes answering may now tell who is damaged.
          const index = this.raised.findIndex((alarm) => alarm.peerNodeId === peer.nodeId && alarm.revision === found.revision);
          if (index >= 0 && this.raised[index].suspect === 0 && suspect !== 0) this.raised[index] = { ...this.raised[index], suspect };
          continue;
        }
        this.raisedKeys.add(key);
        const alarm: ReplicaHashAlarm = {
          revision: found.revision, localNodeId: this.deps.nodeId, localHash: found.ours, peerNodeId: peer.nodeId, peerHash: found.theirs, suspect, detectedAt: new Date().toISOString(),
        };
        this.deps.logger.error('ALARM: replica state hash mismatch: this node and a peer hold different states at the same revision', { ...alarm });
        if (this.raised.length < ALARMS_KEPT) this.raised.push(alarm);
        fresh.push(alarm);
      }
    }
    return fresh;
  }

  /** Whether this node must report itself unhealthy: it is a suspect, or a mismatch is undecided. */
  get unhealthy(): boolean {
    return this.raised.some((alarm) => alarm.suspect === this.deps.nodeId || alarm.suspect === 0);
  }

  /** What the status answer publishes: peers compare `checkpoints` with theirs. */
  report(): ReplicaHashReport {
    return { everyRevisions: this.deps.everyRevisions, checkpoints: [...this.kept], alarms: [...this.raised], comparisons: this.compared };
  }

  get checkpoints(): readonly HashCheckpoint[] {
    return this.kept;
  }

  get alarms(): readonly ReplicaHashAlarm[] {
    return this.raised;
  }

  /** How many peer comparisons were made (tests: the check really ran). */
  get comparisons(): number {
    return this.compared;
  }

  /**
   * Every `intervalMs`, fetch the other members' checkpoints and compare. One round at a time; a
   * peer that does not answer is skipped this round (it is checked when it answers again).
   */
  startComparing(fetchPeers: () => Promise<readonly PeerCheckpoints[]>, intervalMs: number): void {
    const round = (): void => {
      if (this.stopped) return;
      fetchPeers()
        .then((peers) => { this.compareRound(peers); })
        .catch((error: unknown) => this.deps.logger.debug('replica hash comparison round failed', { error: (error as Error).message }))
        .finally(() => {
          if (this.stopped) return;
          this.timer = setTimeout(round, intervalMs);
          this.timer.unref();
        });
    };
    this.timer = setTimeout(round, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

/** Parse a peer's published checkpoints (they arrive as untrusted JSON); [] when malformed. */
export function parseCheckpoints(value: unknown): HashCheckpoint[] {
  if (!Array.isArray(value)) return [];
  const parsed: HashCheckpoint[] = [];
  for (const item of value.slice(0, CHECKPOINTS_KEPT * 2)) {
    if (typeof item !== 'object' || item === null) continue;
    const { revision, hash } = item as { revision?: unknown; hash?: unknown };
    if (typeof revision === 'number' && Number.isSafeInteger(revision) && revision >= 1 && typeof hash === 'string' && /^[0-9a-f]{64}$/.test(hash)) parsed.push({ revision, hash });
  }
  return parsed;
}
