// Exactly-once writes (Raft thesis, section 6.3): a client stamps each write with its id and a
// sequence number; the state machine remembers the result of each stamped write until the client
// acknowledges it, and answers a retry with the first result instead of applying it again.
//
// All of it lives in lmdb, written in the apply transaction, so it is in every snapshot and every
// replica decides the same way. Expiry uses only what the log says: the entry index and the leader's
// proposedAtMs stamps, never this machine's clock.
//
// Bounds: per client at most SESSION_RESULTS_MAX results (the oldest are dropped beyond); a client
// idle for more than SESSION_IDLE_ENTRIES_MAX entries, or whose last stamp is more than
// SESSION_IDLE_MS_MAX older than the newest stamp applied, is forgotten.
//
// Expiry is decided exactly at lookup time; the physical removal of idle sessions is a bounded
// sweep that may lag (see sweep()). Since "expired" never becomes false again for an idle client,
// the lag is invisible to clients, and replicas that sweep at different moments answer alike.

import { decodeValue, encodeValue } from '../codec/raft-codec.js';
import type { ClientStamp } from './commands.js';
import type { BinaryDb } from './engine.js';
import {
  decodeSession, encodeSession, orderKey, orderKeyClient, resultKey, resultKeyAfterClient, resultKeySeq, u64Key, type SessionRecord,
} from './encoding.js';
import type { CommandResult } from './results.js';

export const SESSION_RESULTS_MAX = 1024;
export const SESSION_IDLE_ENTRIES_MAX = 1_000_000;
export const SESSION_IDLE_MS_MAX = 60 * 60 * 1000;

/** How far a session's real activity may run ahead of its position in the expiry orders before it
 * is moved there: moving it on every write would cost two deletes and two puts per write. */
const REINDEX_ENTRIES = 4096;
const REINDEX_MS = 10_000;

/** Up to this many acknowledged seqs are forgotten by point deletes instead of a cursor scan. */
const POINT_DELETES_MAX = 32;

const EMPTY = Buffer.alloc(0);

export interface SessionDbs {
  readonly sessions: BinaryDb;
  readonly results: BinaryDb;
  readonly sessionsByIndex: BinaryDb;
  readonly sessionsByTime: BinaryDb;
}

/** Where the log is: the index of the entry being applied and the newest leader stamp so far. */
export interface LogClock {
  readonly index: number;
  readonly newestProposedAtMs: number;
}

export type SessionLookup =
  | { readonly kind: 'duplicate'; readonly result: CommandResult }
  | { readonly kind: 'forgotten'; readonly result: CommandResult }
  | { readonly kind: 'fresh'; readonly session: SessionRecord | null };

export function isExpired(session: SessionRecord, clock: LogClock): boolean {
  return clock.index - session.lastIndex > SESSION_IDLE_ENTRIES_MAX
    || clock.newestProposedAtMs - session.lastProposedAtMs > SESSION_IDLE_MS_MAX;
}

export class Sessions {
  constructor(private readonly dbs: SessionDbs) {}

  /** Decide what a stamped write is: a retry of a remembered one, one we can no longer judge, or new. */
  lookup(stamp: ClientStamp, clock: LogClock): SessionLookup {
    const clientBytes = Buffer.from(stamp.clientId, 'utf8');
    const stored = this.dbs.sessions.getBinaryFast(clientBytes);
    if (stored === undefined) return { kind: 'fresh', session: null };
    const session = decodeSession(stored);
    if (isExpired(session, clock)) {
      this.purge(clientBytes, session);
      return { kind: 'fresh', session: null };
    }
    const result = this.dbs.results.get(resultKey(clientBytes, stamp.seq));
    if (result !== undefined) return { kind: 'duplicate', result: decodeValue(result) as CommandResult };
    if (stamp.seq <= session.ackedSeq || stamp.seq <= session.evictedSeqMax) {
      // Acknowledged or evicted: it was applied once, and applying it again could be wrong.
      return {
        kind: 'forgotten',
        result: {
          kind: 'error',
          code: 'STALE_SEQUENCE',
          message: `Client ${stamp.clientId} sequence ${stamp.seq} is at or below what the store no longer remembers (acknowledged ${session.ackedSeq}, evicted ${session.evictedSeqMax}); it may already have been applied, so it was not applied again.`,
        },
      };
    }
    return { kind: 'fresh', session };
  }

  /** Remember the result of a write just applied, and forget what the client has acknowledged. */
  record(stamp: ClientStamp, clock: LogClock, proposedAtMs: number, previous: SessionRecord | null, result: CommandResult): void {
    const clientBytes = Buffer.from(stamp.clientId, 'utf8');
    const ackedSeq = Math.max(previous?.ackedSeq ?? 0, stamp.ackedSeq);
    let resultCount = previous?.resultCount ?? 0;
    let evictedSeqMax = previous?.evictedSeqMax ?? 0;
    if (previous !== null && ackedSeq > previous.ackedSeq && resultCount > 0) resultCount -= this.forgetAcknowledged(clientBytes, previous.ackedSeq, ackedSeq);
    this.dbs.results.putSync(resultKey(clientBytes, stamp.seq), Buffer.from(encodeValue(result)));
    resultCount += 1;
    if (resultCount > SESSION_RESULTS_MAX) {
      const dropped = this.removeResults(clientBytes, resultKeyAfterClient(clientBytes), resultCount - SESSION_RESULTS_MAX);
      resultCount -= dropped.removed;
      evictedSeqMax = Math.max(evictedSeqMax, dropped.highestSeq);
    }
    const position = this.positionInOrders(clientBytes, previous, clock.index, proposedAtMs);
    this.dbs.sessions.putSync(clientBytes, encodeSession({
      lastIndex: clock.index,
      lastProposedAtMs: proposedAtMs,
      ackedSeq,
      evictedSeqMax,
      resultCount,
      indexedIndex: position.index,
      indexedProposedAtMs: position.proposedAtMs,
    }));
  }

  /**
   * Physically remove sessions that have expired, oldest first, looking at no more than
   * `budgetSessions` candidates. Returns how many sessions were removed.
   */
  sweep(clock: LogClock, budgetSessions: number): number {
    let removed = 0;
    let budget = budgetSessions;
    const byIndexCutoff = clock.index - SESSION_IDLE_ENTRIES_MAX;
    if (byIndexCutoff > 0) {
      const swept = this.sweepOrder(this.dbs.sessionsByIndex, byIndexCutoff, clock, budget);
      removed += swept.removed;
      budget -= swept.visited;
    }
    const byTimeCutoff = clock.newestProposedAtMs - SESSION_IDLE_MS_MAX;
    if (byTimeCutoff > 0 && budget > 0) removed += this.sweepOrder(this.dbs.sessionsByTime, byTimeCutoff, clock, budget).removed;
    return removed;
  }

  private sweepOrder(order: BinaryDb, cutoff: number, clock: LogClock, budget: number): { removed: number; visited: number } {
    const candidates: Buffer[] = [];
    for (const key of order.getKeys({ start: u64Key(0), end: u64Key(cutoff), limit: budget })) candidates.push(Buffer.from(key));
    let removed = 0;
    for (const candidate of candidates) {
      const clientBytes = orderKeyClient(candidate);
      const stored = this.dbs.sessions.getBinaryFast(clientBytes);
      if (stored === undefined) {
        order.removeSync(candidate); // cannot happen while purge() removes both; kept harmless
        continue;
      }
      const session = decodeSession(stored);
      if (isExpired(session, clock)) {
        this.purge(clientBytes, session);
        removed += 1;
      } else {
        // Still alive: its position lagged behind its activity. Move it to where it really is.
        this.moveInOrders(clientBytes, session, session.lastIndex, session.lastProposedAtMs);
      }
    }
    return { removed, visited: candidates.length };
  }

  private positionInOrders(clientBytes: Buffer, previous: SessionRecord | null, index: number, proposedAtMs: number): { index: number; proposedAtMs: number } {
    if (previous === null) {
      this.dbs.sessionsByIndex.putSync(orderKey(index, clientBytes), EMPTY);
      this.dbs.sessionsByTime.putSync(orderKey(proposedAtMs, clientBytes), EMPTY);
      return { index, proposedAtMs };
    }
    let indexed = previous.indexedIndex;
    let indexedMs = previous.indexedProposedAtMs;
    if (index - indexed >= REINDEX_ENTRIES) {
      this.dbs.sessionsByIndex.removeSync(orderKey(indexed, clientBytes));
      this.dbs.sessionsByIndex.putSync(orderKey(index, clientBytes), EMPTY);
      indexed = index;
    }
    if (Math.abs(proposedAtMs - indexedMs) >= REINDEX_MS) {
      this.dbs.sessionsByTime.removeSync(orderKey(indexedMs, clientBytes));
      this.dbs.sessionsByTime.putSync(orderKey(proposedAtMs, clientBytes), EMPTY);
      indexedMs = proposedAtMs;
    }
    return { index: indexed, proposedAtMs: indexedMs };
  }

  private moveInOrders(clientBytes: Buffer, session: SessionRecord, index: number, proposedAtMs: number): void {
    this.dbs.sessionsByIndex.removeSync(orderKey(session.indexedIndex, clientBytes));
    this.dbs.sessionsByIndex.putSync(orderKey(index, clientBytes), EMPTY);
    this.dbs.sessionsByTime.removeSync(orderKey(session.indexedProposedAtMs, clientBytes));
    this.dbs.sessionsByTime.putSync(orderKey(proposedAtMs, clientBytes), EMPTY);
    this.dbs.sessions.putSync(clientBytes, encodeSession({ ...session, indexedIndex: index, indexedProposedAtMs: proposedAtMs }));
  }

  private purge(clientBytes: Buffer, session: SessionRecord): void {
    this.removeResults(clientBytes, resultKeyAfterClient(clientBytes), Number.MAX_SAFE_INTEGER);
    this.dbs.sessionsByIndex.removeSync(orderKey(session.indexedIndex, clientBytes));
    this.dbs.sessionsByTime.removeSync(orderKey(session.indexedProposedAtMs, clientBytes));
    this.dbs.sessions.removeSync(clientBytes);
  }

  /**
   * Remove the results of seqs in (fromSeq, toSeq]. A client acknowledges a few seqs at a time, so
   * deleting them by key is the common case; a long jump falls back to one range scan.
   */
  private forgetAcknowledged(clientBytes: Buffer, fromSeq: number, toSeq: number): number {
    if (toSeq - fromSeq > POINT_DELETES_MAX) return this.removeResults(clientBytes, resultKey(clientBytes, toSeq + 1), Number.MAX_SAFE_INTEGER).removed;
    let removed = 0;
    for (let seq = fromSeq + 1; seq <= toSeq; seq++) if (this.dbs.results.removeSync(resultKey(clientBytes, seq))) removed += 1;
    return removed;
  }

  /** Remove the client's results with keys below `end`, oldest first, at most `limit` of them. */
  private removeResults(clientBytes: Buffer, end: Buffer, limit: number): { removed: number; highestSeq: number } {
    const keys: Buffer[] = [];
    for (const key of this.dbs.results.getKeys({ start: resultKey(clientBytes, 0), end, limit })) keys.push(Buffer.from(key));
    let highestSeq = 0;
    for (const key of keys) {
      this.dbs.results.removeSync(key);
      highestSeq = Math.max(highestSeq, resultKeySeq(key));
    }
    return { removed: keys.length, highestSeq };
  }
}
