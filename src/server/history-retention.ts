// History retention: the leader proposes the replicated `compact` command so that at most
// HISTORY_RETENTION_REVISIONS revisions stay readable (reads below the compacted revision get 410
// COMPACTED). Compaction is a log entry like any write, so every replica compacts at the same
// point of the log; followers never propose it.
//
// The rules, and why:
// - Readable revisions are compactedRevision..revision. Once there are more than `retention`,
//   the leader compacts to leave `retention - slack` of them: a compact entry every `slack + 1`
//   writes instead of one per write (slack is a tenth of the retention, at most one step).
// - One compact command moves the compacted revision by at most STEP_REVISIONS_MAX, and the
//   next one waits until the leader's own engine has physically removed what the last one freed:
//   lowering the retention on a big store turns into many bounded steps, not one huge backlog.
// - One proposal in flight at a time; it is never awaited by the Ready loop, so writes go on.

import type { KvCommand } from '../kvstore/commands.js';
import type { CommandResult } from '../kvstore/results.js';
import type { Logger } from '../common/logger.js';

/** The most one compact command advances the compacted revision. */
export const STEP_REVISIONS_MAX = 10_000;

export interface RetentionState {
  readonly revision: number;
  readonly compactedRevision: number;
}

/** Slack below the retention left by each compaction (so compactions are not one per write). */
export function retentionSlack(retentionRevisions: number): number {
  return Math.min(Math.floor(retentionRevisions / 10), STEP_REVISIONS_MAX);
}

/**
 * The revision to compact to now, or null when the history is within the retention. Pure: the
 * policy's unit tests drive it directly.
 */
export function retentionTarget(state: RetentionState, retentionRevisions: number): number | null {
  if (!Number.isSafeInteger(retentionRevisions) || retentionRevisions < 1) throw new RangeError(`retention must be a positive integer, not ${retentionRevisions}`);
  const { revision, compactedRevision } = state;
  // Revision 1 is the empty store; "compacted 0" means nothing was compacted, and 1 is the oldest.
  const oldestReadable = Math.max(compactedRevision, 1);
  const readable = revision - oldestReadable + 1;
  if (readable <= retentionRevisions) return null;
  const wanted = Math.min(revision - retentionRevisions + 1 + retentionSlack(retentionRevisions), revision);
  const target = Math.min(wanted, oldestReadable + STEP_REVISIONS_MAX);
  if (target <= compactedRevision) throw new Error(`retention target ${target} is not above the compacted revision ${compactedRevision}`);
  return target;
}

export interface HistoryRetentionDeps {
  readonly retentionRevisions: number;
  readonly logger: Logger;
  readonly isLeader: () => boolean;
  readonly state: () => RetentionState;
  /** Whether history freed by an earlier compaction still waits to be removed physically. */
  readonly compactionPending: () => boolean;
  readonly propose: (command: KvCommand) => Promise<CommandResult>;
  /** The leader's wall clock, stamped into the command (the state machine never reads one). */
  readonly nowMs: () => number;
}

export class HistoryRetention {
  private inFlight = false;
  private stopped = false;
  private proposedCount = 0;

  constructor(private readonly deps: HistoryRetentionDeps) {}

  /** Called after each Ready: cheap when nothing is due. */
  afterReady(): void {
    if (this.inFlight || this.stopped || !this.deps.isLeader()) return;
    const state = this.deps.state();
    const target = retentionTarget(state, this.deps.retentionRevisions);
    if (target === null || this.deps.compactionPending()) return;
    this.inFlight = true;
    this.proposedCount++;
    const command: KvCommand = { v: 1, op: 'compact', revision: target, proposedAtMs: this.deps.nowMs() };
    this.deps.logger.debug('history retention: proposing compaction', { revision: state.revision, compactedRevision: state.compactedRevision, target });
    void this.deps.propose(command).then(
      (result) => {
        // An error result is normal after a leader change (another leader compacted first).
        if (result.kind === 'error') this.deps.logger.debug('history retention: compaction not applied', { target, code: result.code, message: result.message });
        else this.deps.logger.info('history compacted by retention', { compactedRevision: target, retentionRevisions: this.deps.retentionRevisions });
      },
      (error: unknown) => this.deps.logger.debug('history retention: compaction proposal failed; retried later', { target, error: (error as Error).message }),
    ).finally(() => {
      this.inFlight = false;
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /** How many compactions this node has proposed (tests and metrics). */
  get proposed(): number {
    return this.proposedCount;
  }
}
