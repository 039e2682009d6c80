// ReadIndex bookkeeping (Raft thesis 6.4): a read is served at the commit index the leader had when
// the read arrived, once a heartbeat round started after that moment has been answered by a
// majority, proving nobody else was leading. One round serves every read queued before it started.

import { majority } from './quorum.js';
import type { Index, NodeId } from './types.js';

export interface PendingRead {
  readonly from: NodeId;
  readonly context: number;
  readonly index: Index;
}

interface Round {
  readonly id: number;
  readonly reads: readonly PendingRead[];
  readonly acks: Set<NodeId>;
}

/** Bound on reads a leader holds while it waits for quorum: past it, readIndex answers overloaded. */
export const MAX_PENDING_READS = 65536;

export class ReadIndexTracker {
  /** Reads that arrived before this leader committed an entry of its term (its no-op). */
  private awaitingCommit: { from: NodeId; context: number }[] = [];
  /** Reads with a read index, waiting for the next round to start. */
  private queued: PendingRead[] = [];
  private rounds: Round[] = [];
  private lastRoundId = 0;
  private pendingCount = 0;

  isFull(): boolean {
    return this.pendingCount >= MAX_PENDING_READS;
  }

  awaitTermCommit(from: NodeId, context: number): void {
    this.awaitingCommit.push({ from, context });
    this.pendingCount++;
  }

  /** The leader committed `commitIndex` in its own term: waiting reads get it as their index. */
  termCommitted(commitIndex: Index): void {
    for (const read of this.awaitingCommit) this.queued.push({ ...read, index: commitIndex });
    this.awaitingCommit = [];
  }

  enqueue(from: NodeId, context: number, index: Index): void {
    this.queued.push({ from, context, index });
    this.pendingCount++;
  }

  wantsRound(): boolean {
    return this.queued.length > 0;
  }

  /** Start a round for every queued read; returns the context its heartbeats carry. */
  startRound(): number {
    this.lastRoundId++;
    this.rounds.push({ id: this.lastRoundId, reads: this.queued, acks: new Set() });
    this.queued = [];
    return this.lastRoundId;
  }

  /** The context periodic heartbeats carry: answering it confirms every round started so far. */
  latestRound(): number {
    return this.lastRoundId;
  }

  /** Rounds the leader's own vote confirms: all of them when it is the only voter (a majority of
   * one), none otherwise. Nobody else answers a lone voter's rounds, so without this check reads
   * queued behind its no-op would wait for ever. */
  confirmedBySelf(voters: readonly NodeId[], self: NodeId): PendingRead[] {
    if (!voters.includes(self) || majority(voters.length) > 1) return [];
    const released: PendingRead[] = [];
    for (const round of this.rounds.splice(0)) released.push(...round.reads);
    this.pendingCount -= released.length;
    return released;
  }

  /** `voter` answered a heartbeat carrying `context`. Returns the reads that are now safe, oldest
   * first. The leader itself always counts. */
  acknowledge(voter: NodeId, context: number, voters: readonly NodeId[], self: NodeId): PendingRead[] {
    const needed = majority(voters.length);
    let confirmedUpTo = -1;
    for (let i = 0; i < this.rounds.length && this.rounds[i].id <= context; i++) {
      const round = this.rounds[i];
      round.acks.add(voter);
      const selfVotes = voters.includes(self) ? 1 : 0;
      if (round.acks.size + selfVotes >= needed) confirmedUpTo = i;
    }
    if (confirmedUpTo < 0) return [];
    const released: PendingRead[] = [];
    for (const round of this.rounds.splice(0, confirmedUpTo + 1)) released.push(...round.reads);
    this.pendingCount -= released.length;
    return released;
  }

  /** Leadership was lost: every pending read is dropped (the runtime times them out). */
  clear(): void {
    this.awaitingCommit = [];
    this.queued = [];
    this.rounds = [];
    this.pendingCount = 0;
  }
}
