// Raft's safety properties, checked incrementally as the simulation runs: each observation costs a
// few map look-ups, never a scan of every log. The runtime reports what nodes do (persist, vote,
// commit, apply, become leader); the checker keeps global registries and records violations.
//
// Properties (Raft paper, figure 3, plus the durability promises of ARCHITECTURE.md):
// - electionSafety: at most one leader per term.
// - voteOnce: a node grants at most one (real, not pre-) vote per term, across restarts.
// - logMatching: two logs holding an entry with the same index and term hold the same command there
//   and agree on the term of the entry before it (so, by induction, on the whole prefix).
// - termsNonDecreasing: a log's terms never go down.
// - leaderCompleteness: a new leader holds every entry committed in an earlier term.
// - leaderCommitsOwnTerm: a leader moves its commit index only onto an entry of its own term.
// - stateMachineSafety: every node applies the same entry at the same index.
// - committedOnMajority: when a leader moves its commit index, a majority of the voters of the
//   configuration in force (the latest config entry in that leader's log, learners never counted)
//   durably holds the entry; and no node applies an entry before some leader has committed it.
// - leaderIsVoter: a node becomes leader only while it is a voter in its own current configuration.
// - electedByMajority: a new leader holds real votes granted in its term by a majority of the voters
//   of its configuration (itself included); learners' votes never count.
// - snapshotMembership: a snapshot (taken or installed) records the configuration in force at its
//   index, as the committed log says.
// - replicaState: two state-machine images at the same index (snapshots taken, sent, installed) are
//   identical, so a half-received or corrupted snapshot never goes unnoticed.
// - monotonic: within one incarnation of a node, term, commit index and applied index never go back.
// - acknowledgedWriteLost: every acknowledged client write is in the final committed log.
// The runtime and the disk report through `report()` what only they can see: persistBeforePromise
// (a vote or acknowledgement left before the disk held what it promises), applyOrder, readyContract
// and storageContract (the core's side of the Ready contract).

import type { Entry, Index, Membership, NodeId, Term } from '../../src/raft/types.js';
import type { Micros } from './events.js';
import { entryIdentity } from './kv.js';

export interface Violation {
  readonly property: string;
  readonly detail: string;
  /** Simulated time, microseconds. */
  readonly time: Micros;
}

/** What the checker may ask about the cluster. */
export interface ClusterView {
  /** Whether node `id` durably holds the entry (index, term): in its synced log or snapshot. */
  durablyHolds(id: NodeId, index: Index, term: Term): boolean;
}

/** A configuration as the checkers compare them: members by id, with their roles. */
export function describeMembership(membership: Membership): string {
  return [...membership.members]
    .sort((a, b) => a.id - b.id)
    .map((member) => `${member.id}${member.role === 'learner' ? 'L' : ''}`)
    .join(',');
}

interface RegisteredEntry {
  readonly identity: string;
  /** The term of the entry before it; undefined when the writer did not know it (compacted). */
  prevTerm: Term | undefined;
  readonly firstSeenBy: NodeId;
}

interface AppliedEntry {
  readonly term: Term;
  readonly identity: string;
  readonly firstAppliedBy: NodeId;
}

interface Progress {
  term: Term;
  commitIndex: Index;
  appliedIndex: Index;
}

export class SafetyChecker {
  readonly violations: Violation[] = [];
  private readonly leaderOfTerm = new Map<Term, NodeId>();
  private readonly votes = new Map<string, NodeId>();
  private readonly entries = new Map<string, RegisteredEntry>();
  /** applied[i] is the entry first applied at index i anywhere. */
  private readonly applied: (AppliedEntry | undefined)[] = [];
  /** Per leader term, the highest entry that term's leader committed (by counting replicas). */
  private readonly commitsByTerm = new Map<Term, { index: Index; entryTerm: Term; leader: NodeId }>();
  private readonly progress = new Map<NodeId, Progress>();
  /** The highest index any leader has committed (by counting, or by stepping down right after). */
  private leaderCommittedMax: Index = 0;
  /** Config entries in the order they were first applied (so by index), after the founding one. */
  private readonly appliedConfigs: { readonly index: Index; readonly members: string }[] = [];
  /** A digest of the first state-machine image seen at each index. */
  private readonly imageDigests = new Map<Index, { readonly digest: string; readonly by: NodeId; readonly what: string }>();

  constructor(
    private readonly view: ClusterView,
    private readonly clock: () => Micros,
    /** Stop recording after this many (the first one explains the run; the rest are fallout). */
    private readonly violationCountMax = 20,
    /** The configuration every log starts from (the snapshot at index 0). */
    private readonly foundingMembership: Membership | null = null,
  ) {}

  get ok(): boolean {
    return this.violations.length === 0;
  }

  /** The entry first applied at `index` anywhere, if any. */
  appliedAt(index: Index): { readonly term: Term; readonly identity: string } | undefined {
    return this.applied[index];
  }

  get appliedIndexMax(): Index {
    return this.applied.length - 1;
  }

  /** Called on every violation recorded (the run uses it to stop at the first one). */
  onViolation: ((violation: Violation) => void) | null = null;

  private readonly ignored = new Set<string>();

  /** Stop checking `property` (a test asking which other checker catches a broken core). */
  ignore(property: string): void {
    this.ignored.add(property);
  }

  report(property: string, detail: string): void {
    if (this.violations.length >= this.violationCountMax || this.ignored.has(property)) return;
    const violation = { property, detail, time: this.clock() };
    this.violations.push(violation);
    this.onViolation?.(violation);
  }

  // ---- Elections ------------------------------------------------------------------------------

  /** Node `id` is leader in `term`. Call whenever observed (cheap when already known). */
  observeLeader(id: NodeId, term: Term): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) this.leaderOfTerm.set(term, id);
    else if (known !== id) this.report('electionSafety', `n${known} and n${id} both became leader in term ${term}`);
  }

  /** Node `voter` sent a granted (real) vote for `candidate` in `term`. */
  observeVoteGranted(voter: NodeId, term: Term, candidate: NodeId): void {
    const key = `${voter}:${term}`;
    const known = this.votes.get(key);
    if (known === undefined) this.votes.set(key, candidate);
    else if (known !== candidate) {
      this.report('voteOnce', `n${voter} voted for n${known} and for n${candidate} in term ${term}`);
    }
  }

  /**
   * Node `id` just became leader of `term`; `termAt` reads its log (including what is not yet
   * persisted) and `snapshotIndex` is where its log starts being compacted away. It must hold every
   * entry committed in an earlier term (paper 5.4); a leader of an older term elected late (its
   * vote replies were held up) need not hold what later terms committed.
   */
  observeNewLeader(
    id: NodeId, term: Term, termAt: (index: Index) => Term | undefined, snapshotIndex: Index, voters: readonly NodeId[] | null = null,
  ): void {
    this.observeLeader(id, term);
    if (voters !== null) this.checkElectorate(id, term, voters);
    let latest: { index: Index; entryTerm: Term; leader: NodeId; term: Term } | undefined;
    for (const [commitTerm, commit] of this.commitsByTerm) {
      if (commitTerm < term && (latest === undefined || commit.index > latest.index)) latest = { ...commit, term: commitTerm };
    }
    if (latest === undefined || latest.index <= snapshotIndex) return;
    const held = termAt(latest.index);
    if (held !== latest.entryTerm) {
      this.report(
        'leaderCompleteness',
        `n${id} became leader of term ${term} without entry ${latest.index}/${latest.entryTerm}, committed in term ` +
          `${latest.term} by n${latest.leader}; its log has ${held === undefined ? 'nothing' : `term ${held}`} there`,
      );
    }
  }

  /** A leader must be a voter of its own configuration, elected by a majority of its voters. */
  private checkElectorate(id: NodeId, term: Term, voters: readonly NodeId[]): void {
    if (!voters.includes(id)) {
      this.report('leaderIsVoter', `n${id} became leader of term ${term} but is not a voter of its configuration {${voters.join(',')}}`);
      return;
    }
    let granted = 0;
    for (const voter of voters) if (voter === id || this.votes.get(`${voter}:${term}`) === id) granted++;
    if (granted * 2 <= voters.length) {
      this.report(
        'electedByMajority',
        `n${id} became leader of term ${term} with the votes of ${granted} of its ${voters.length} voters {${voters.join(',')}}`,
      );
    }
  }

  // ---- Logs -----------------------------------------------------------------------------------

  /**
   * Node `id` wrote `entries` to its log; `prevTerm` is the term its log holds just before the first
   * of them (undefined when compacted away).
   */
  observePersist(id: NodeId, entries: readonly Entry[], prevTerm: Term | undefined): void {
    let before = prevTerm;
    for (const entry of entries) {
      if (before !== undefined && entry.term < before) {
        this.report('termsNonDecreasing', `n${id} persisted ${entry.index}/${entry.term} after an entry of term ${before}`);
      }
      this.registerEntry(id, entry, before);
      before = entry.term;
    }
  }

  private registerEntry(id: NodeId, entry: Entry, prevTerm: Term | undefined): void {
    const key = `${entry.index}:${entry.term}`;
    const identity = entryIdentity(entry);
    const known = this.entries.get(key);
    if (known === undefined) {
      this.entries.set(key, { identity, prevTerm, firstSeenBy: id });
      return;
    }
    if (known.identity !== identity) {
      this.report(
        'logMatching',
        `entry ${entry.index}/${entry.term} differs: n${known.firstSeenBy} holds ${known.identity}, n${id} holds ${identity}`,
      );
    } else if (prevTerm !== undefined) {
      if (known.prevTerm === undefined) known.prevTerm = prevTerm;
      else if (known.prevTerm !== prevTerm) {
        this.report(
          'logMatching',
          `entry ${entry.index}/${entry.term} follows term ${known.prevTerm} on n${known.firstSeenBy} but term ${prevTerm} on n${id}`,
        );
      }
    }
  }

  // ---- Commit and apply -----------------------------------------------------------------------

  /**
   * A leader advanced its commit index by counting replicas: paper 5.4.2 allows that only for an
   * entry of its own term (older entries are committed indirectly, by the ones that follow).
   */
  observeLeaderCommit(id: NodeId, term: Term, commitIndex: Index, entryTerm: Term | undefined, voters: readonly NodeId[] | null = null): void {
    this.leaderCommittedMax = Math.max(this.leaderCommittedMax, commitIndex);
    if (entryTerm !== term) {
      this.report(
        'leaderCommitsOwnTerm',
        `n${id}, leader of term ${term}, moved its commit index to ${commitIndex}, an entry of term ${entryTerm ?? '?'}`,
      );
      return;
    }
    if (voters !== null) this.checkMajorityHolds(id, term, commitIndex, entryTerm, voters);
    const known = this.commitsByTerm.get(term);
    if (known === undefined || commitIndex > known.index) this.commitsByTerm.set(term, { index: commitIndex, entryTerm, leader: id });
  }

  /** A commit: the entry must be durable on a majority of the voters the leader counts with. */
  private checkMajorityHolds(id: NodeId, term: Term, index: Index, entryTerm: Term, voters: readonly NodeId[]): void {
    let holders = 0;
    for (const voter of voters) if (this.view.durablyHolds(voter, index, entryTerm)) holders++;
    if (holders * 2 <= voters.length) {
      this.report(
        'committedOnMajority',
        `n${id}, leader of term ${term}, committed ${index}/${entryTerm} but only ${holders} of the ${voters.length} voters ` +
          `{${voters.join(',')}} of its configuration durably hold it`,
      );
    }
  }

  /** Node `id` applied `entry` to its state machine. */
  observeApply(id: NodeId, entry: Entry): void {
    const identity = entryIdentity(entry);
    const known = this.applied[entry.index];
    if (known !== undefined) {
      if (known.term !== entry.term || known.identity !== identity) {
        this.report(
          'stateMachineSafety',
          `at index ${entry.index} n${known.firstAppliedBy} applied ${known.identity} (term ${known.term}) ` +
            `but n${id} applied ${identity} (term ${entry.term})`,
        );
      }
      return;
    }
    this.applied[entry.index] = { term: entry.term, identity, firstAppliedBy: id };
    if (entry.index > this.leaderCommittedMax) {
      this.report(
        'committedOnMajority',
        `n${id} applied ${entry.index}/${entry.term}, which no leader has committed (highest ${this.leaderCommittedMax})`,
      );
    }
    if (entry.kind === 'config') this.appliedConfigs.push({ index: entry.index, members: describeMembership(entry.membership) });
  }

  // ---- Snapshots ------------------------------------------------------------------------------

  /** The configuration in force at `index` by the committed log: the last config entry applied
   * anywhere at or before it, else the founding one. Undefined when not known. */
  private membershipAt(index: Index): string | undefined {
    for (let k = this.appliedConfigs.length - 1; k >= 0; k--) {
      const config = this.appliedConfigs[k] as { index: Index; members: string };
      if (config.index <= index) return config.members;
    }
    return this.foundingMembership === null ? undefined : describeMembership(this.foundingMembership);
  }

  /** Node `id` took, installed or recovered a snapshot at `index` recording `membership`. */
  observeSnapshotMembership(id: NodeId, what: string, index: Index, membership: Membership): void {
    if (index > this.appliedIndexMax) return; // not applied anywhere yet: nothing to compare with
    const expected = this.membershipAt(index);
    const recorded = describeMembership(membership);
    if (expected !== undefined && expected !== recorded) {
      this.report(
        'snapshotMembership',
        `n${id} ${what} at ${index} records members {${recorded}} but the configuration in force there is {${expected}}`,
      );
    }
  }

  /** Node `id` holds state-machine image `digest` at `index` (`what`: taken, installed, ...). */
  observeImage(id: NodeId, what: string, index: Index, digest: string): void {
    const known = this.imageDigests.get(index);
    if (known === undefined) {
      this.imageDigests.set(index, { digest, by: id, what });
      return;
    }
    if (known.digest !== digest) {
      this.report(
        'replicaState',
        `the image n${id} ${what} at ${index} differs from the one n${known.by} ${known.what} there (${digest} vs ${known.digest})`,
      );
    }
  }

  // ---- Per-incarnation monotonicity -----------------------------------------------------------

  /** A node (re)started: its in-memory progress starts afresh. */
  observeStart(id: NodeId, progress: Progress): void {
    this.progress.set(id, { ...progress });
  }

  observeProgress(id: NodeId, term: Term, commitIndex: Index, appliedIndex: Index): void {
    const known = this.progress.get(id);
    if (known === undefined) {
      this.progress.set(id, { term, commitIndex, appliedIndex });
      return;
    }
    if (term < known.term) this.report('monotonic', `n${id}'s term went back from ${known.term} to ${term}`);
    if (commitIndex < known.commitIndex) {
      this.report('monotonic', `n${id}'s commit index went back from ${known.commitIndex} to ${commitIndex}`);
    }
    if (appliedIndex < known.appliedIndex) {
      this.report('monotonic', `n${id}'s applied index went back from ${known.appliedIndex} to ${appliedIndex}`);
    }
    known.term = Math.max(term, known.term);
    known.commitIndex = Math.max(commitIndex, known.commitIndex);
    known.appliedIndex = Math.max(appliedIndex, known.appliedIndex);
  }

  // ---- End of run -----------------------------------------------------------------------------

  /**
   * Every acknowledged write must be in the final committed log: `holds(index, term)` reads the log
   * of a leader that has committed an entry of its own term, `committedIndex` is its commit index.
   */
  checkAcknowledged(
    acknowledged: readonly { readonly opId: number; readonly index: Index; readonly term: Term }[],
    holds: (index: Index, term: Term) => boolean,
    committedIndex: Index,
  ): void {
    for (const write of acknowledged) {
      if (write.index > committedIndex || !holds(write.index, write.term)) {
        this.report(
          'acknowledgedWriteLost',
          `op ${write.opId} was acknowledged at ${write.index}/${write.term} but the final committed log ` +
            `(commit ${committedIndex}) does not hold it`,
        );
      }
    }
  }
}
