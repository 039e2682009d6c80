// What a leader knows about one follower's log, and how fast it may send to it.
//
//   probe:     the leader does not know where the logs match; one AppendEntries at a time.
//   replicate: the logs match up to `match`; entries stream pipelined, at most `maxInflight`
//              messages unacknowledged.
//   snapshot:  the follower needs entries the leader compacted away; a snapshot is on its way and
//              nothing else is sent until the runtime reports the transfer's end.
//
// Invariant: match < next.

import { invariant } from './assert.js';
import type { Index } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match: Index = 0;
  next: Index;
  state: ProgressState = 'probe';
  /** In probe state: an append was sent and no answer or heartbeat response has come back yet. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot: Index = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Last index of each unacknowledged append, oldest first (bounded by maxInflight). */
  private readonly inflight: Index[] = [];
  /** The leaderCommit of the last append sent to this follower (what it was told is committed). */
  commitSent: Index = 0;

  constructor(next: Index, private readonly maxInflight: number) {
    this.next = next;
  }

  private checkInvariant(): void {
    invariant(this.match < this.next, () => `progress match ${this.match} not below next ${this.next}`);
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it; otherwise right after the known match.
    const next = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.state = 'probe';
    this.next = next;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflight.length = 0;
    this.checkInvariant();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.inflight.length = 0;
  }

  becomeSnapshot(snapshotIndex: Index): void {
    this.state = 'snapshot';
    this.pendingSnapshot = snapshotIndex;
    this.inflight.length = 0;
  }

  /** May the leader send an append now? */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe': return this.probeSent;
      case 'replicate': return this.inflight.length >= this.maxInflight;
      case 'snapshot': return true;
    }
  }

  /** Appends carrying entries that are not acknowledged yet. */
  get hasInflight(): boolean {
    return this.inflight.length > 0;
  }

  /** Record an append whose last entry is `lastIndex` (or prevLogIndex if it had none). */
  sentAppend(lastIndex: Index, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflight.push(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** A successful acknowledgement up to `index`. Returns whether it taught us anything new. */
  acknowledge(index: Index): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && this.inflight[0] <= index) this.inflight.shift();
    this.checkInvariant();
    return updated;
  }

  /**
   * A rejection of the append with prevLogIndex `rejected`, hinting `hintIndex` as the follower's
   * best matching candidate. Returns false when the rejection is stale and changes nothing.
   */
  rejected(rejected: Index, hintIndex: Index): boolean {
    if (this.state === 'replicate') {
      // Anything at or below match was acknowledged already: an old, reordered rejection.
      if (rejected <= this.match) return false;
      this.becomeProbe();
      this.next = Math.max(this.match + 1, Math.min(rejected, hintIndex + 1));
      this.checkInvariant();
      return true;
    }
    // In probe only the answer to the latest probe (sent for next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(this.match + 1, Math.min(rejected, hintIndex + 1));
    this.probeSent = false;
    this.checkInvariant();
    return true;
  }

  /** A heartbeat response shows the follower is alive: a paused probe may try again. */
  heardFrom(): void {
    this.recentActive = true;
    if (this.state === 'probe') this.probeSent = false;
    // A full window whose messages were lost would stall the follower forever: free one slot.
    if (this.state === 'replicate' && this.inflight.length >= this.maxInflight) this.inflight.shift();
  }
}
