// The vocabulary of the Raft core: terms, indexes, log entries, membership and the messages
// peers exchange. Names follow the Raft paper (Ongaro & Ousterhout, 2014) and thesis (Ongaro, 2014).
// Everything here is plain data, so a runtime can encode it for the wire or the disk.

/** A member's identity, `NODE_ID` in the configuration; ids start at 1. */
export type NodeId = number;
/** A Raft term: a logical clock that only grows. */
export type Term = number;
/** A position in the replicated log; the first entry has index 1, 0 means "before the log". */
export type Index = number;

export const NO_NODE: NodeId = 0;

export type MemberRole = 'voter' | 'learner';

export interface Member {
  readonly id: NodeId;
  readonly role: MemberRole;
  /** Opaque to the core: where peers reach this member and where its HTTP API listens. */
  readonly peerAddr: string;
  readonly httpAddr: string;
}

/** A cluster configuration, recorded in the log and in every snapshot. */
export interface Membership {
  readonly members: readonly Member[];
}

/** One membership change (Raft thesis chapter 4: one server at a time). */
export type MembershipChange =
  | { readonly kind: 'addVoter'; readonly member: Omit<Member, 'role'> }
  | { readonly kind: 'addLearner'; readonly member: Omit<Member, 'role'> }
  | { readonly kind: 'promote'; readonly id: NodeId }
  | { readonly kind: 'remove'; readonly id: NodeId }
  /** A member's advertised addresses changed (or were unknown when the cluster was founded). The
   * role stays; the core treats addresses as opaque, so this changes no quorum. */
  | { readonly kind: 'updateAddresses'; readonly id: NodeId; readonly peerAddr: string; readonly httpAddr: string };

interface EntryBase {
  readonly term: Term;
  readonly index: Index;
}

/** A client command, opaque to the core. */
export interface CommandEntry extends EntryBase {
  readonly kind: 'command';
  readonly data: Uint8Array;
}

/** The entry every new leader appends at the start of its term, so it can commit older entries. */
export interface NoopEntry extends EntryBase {
  readonly kind: 'noop';
}

/** A configuration entry holds the whole membership that takes effect when it is appended. */
export interface ConfigEntry extends EntryBase {
  readonly kind: 'config';
  readonly membership: Membership;
}

export type Entry = CommandEntry | NoopEntry | ConfigEntry;

/** What must reach stable storage before a vote or an acknowledgement is sent. */
export interface HardState {
  readonly term: Term;
  readonly votedFor: NodeId;
  readonly commitIndex: Index;
}

/** Describes a state-machine snapshot: the image itself lives outside the core. */
export interface SnapshotMeta {
  readonly index: Index;
  readonly term: Term;
  readonly membership: Membership;
}

// ---- Messages ----------------------------------------------------------------------------------

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** RequestVote, or its pre-vote probe (Raft thesis 9.6), which changes no state on the receiver. */
export interface VoteRequest extends MessageBase {
  readonly type: 'voteRequest';
  readonly preVote: boolean;
  readonly lastLogIndex: Index;
  readonly lastLogTerm: Term;
  /** Set when a leader asked the candidate to campaign now (leadership transfer). */
  readonly transfer: boolean;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
}

export interface AppendRequest extends MessageBase {
  readonly type: 'appendRequest';
  readonly prevLogIndex: Index;
  readonly prevLogTerm: Term;
  readonly entries: readonly Entry[];
  readonly leaderCommit: Index;
}

export interface AppendResponse extends MessageBase {
  readonly type: 'appendResponse';
  readonly success: boolean;
  /** On success: the highest index known to match the leader's log. */
  readonly matchIndex: Index;
  /** On rejection, a hint for fast backtracking: the follower's last index if it is short, else
   * the first index of the conflicting term (`conflictTerm`) in the follower's log. */
  readonly conflictIndex: Index;
  readonly conflictTerm: Term;
  /** The prevLogIndex of the request being answered, so stale rejections can be ignored. */
  readonly rejectedIndex: Index;
}

/** Heartbeats carry no entries; `context` identifies the read-index round they confirm. */
export interface HeartbeatRequest extends MessageBase {
  readonly type: 'heartbeatRequest';
  /** min(leader commit, follower match): a follower never learns a commit beyond what it holds. */
  readonly commitIndex: Index;
  readonly context: number;
}

export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeatResponse';
  readonly context: number;
}

/** Tells the follower to install a snapshot; the runtime carries the image beside this message. */
export interface SnapshotRequest extends MessageBase {
  readonly type: 'snapshotRequest';
  readonly snapshot: SnapshotMeta;
}

/** Leadership transfer: the leader tells an up-to-date follower to campaign at once. */
export interface TimeoutNow extends MessageBase {
  readonly type: 'timeoutNow';
}

/** A follower asks the leader for a read index on behalf of its own clients. */
export interface ReadIndexRequest extends MessageBase {
  readonly type: 'readIndexRequest';
  readonly context: number;
}

export interface ReadIndexResponse extends MessageBase {
  readonly type: 'readIndexResponse';
  readonly context: number;
  /** 0 when the leader could not serve it (it is no longer leader, or still unsure of its commit). */
  readonly readIndex: Index;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message['type'];

// ---- What the core hands to its runtime ------------------------------------------------------

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly role: Role;
  readonly leaderId: NodeId;
  readonly term: Term;
}

/** A read that became safe: once applied up to `index`, the reader tagged `context` may read. */
export interface ReadState {
  readonly context: number;
  readonly index: Index;
}

/** Things worth counting or logging, so metrics never reach into the core. */
export type RaftEvent =
  | { readonly type: 'electionStarted'; readonly term: Term; readonly preVote: boolean }
  | { readonly type: 'becameLeader'; readonly term: Term }
  | { readonly type: 'becameFollower'; readonly term: Term; readonly leaderId: NodeId }
  | { readonly type: 'steppedDown'; readonly term: Term; readonly reason: string }
  | { readonly type: 'voteRejected'; readonly term: Term; readonly candidate: NodeId }
  | { readonly type: 'appendRejected'; readonly term: Term; readonly from: NodeId }
  | { readonly type: 'snapshotInstalled'; readonly index: Index; readonly term: Term }
  | { readonly type: 'membershipChanged'; readonly index: Index; readonly membership: Membership }
  | { readonly type: 'transferStarted'; readonly to: NodeId }
  | { readonly type: 'transferAborted'; readonly to: NodeId };

/**
 * The batch of work the runtime must do, in this order:
 * 1. send `messagesNow` (leader traffic that does not depend on local durability);
 * 2. durably write `snapshot` (if any), then `entries` (truncating the stored log from the first
 *    entry's index), then `hardState` (if any), and fsync;
 * 3. send `messagesAfterPersist` (votes and acknowledgements that promise what was just written);
 * 4. apply `snapshot` to the state machine (if any), then `committedEntries`, in order;
 * 5. call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: SnapshotMeta | null;
  readonly messagesNow: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly events: readonly RaftEvent[];
}

/** Why `propose()` refused: nothing was appended in any of these cases. */
export type ProposeRejection =
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leaderId: NodeId }
  | { readonly ok: false; readonly reason: 'overloaded' }
  | { readonly ok: false; readonly reason: 'transferring'; readonly leaderId: NodeId }
  | { readonly ok: false; readonly reason: 'membershipChangePending' }
  | { readonly ok: false; readonly reason: 'invalidMembershipChange'; readonly detail: string };

export type ProposeResult = { readonly ok: true; readonly index: Index; readonly term: Term } | ProposeRejection;

/** Randomness comes from outside so the simulator can seed it. */
export interface RandomSource {
  /** An integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}

export interface RaftConfig {
  readonly id: NodeId;
  /** Election timeout range in ticks; each reset draws from [min, max). */
  readonly electionTimeoutTicksMin: number;
  readonly electionTimeoutTicksMax: number;
  readonly heartbeatIntervalTicks: number;
  /** Upper bound on the byte size of entries in one AppendEntries message. */
  readonly maxAppendBytes: number;
  /** Upper bound on the number of entries in one AppendEntries message. */
  readonly maxAppendEntries: number;
  /** Append messages in flight to one follower before waiting for acknowledgements. */
  readonly maxInflightAppends: number;
  /** Bytes of proposals appended but not yet committed; past it `propose()` answers overloaded. */
  readonly maxUncommittedBytes: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly random: RandomSource;
}

export const DEFAULT_TICK_MS = 10;

/** The defaults of the product, in ticks of 10 ms: 150-300 ms election timeout, 50 ms heartbeats. */
export function defaultRaftConfig(id: NodeId, random: RandomSource): RaftConfig {
  return {
    id,
    electionTimeoutTicksMin: 15,
    electionTimeoutTicksMax: 30,
    heartbeatIntervalTicks: 5,
    maxAppendBytes: 1024 * 1024,
    maxAppendEntries: 4096,
    maxInflightAppends: 256,
    maxUncommittedBytes: 64 * 1024 * 1024,
    preVote: true,
    checkQuorum: true,
    random,
  };
}

/** What the core starts from: empty for a brand-new member, or what the runtime recovered. */
export interface RaftInitialState {
  readonly hardState: HardState;
  /** The latest snapshot, or one at index 0 holding the founding membership. */
  readonly snapshot: SnapshotMeta;
  /** Durable log entries after `snapshot.index` - or starting earlier if a tail was kept. */
  readonly entries: readonly Entry[];
  /** The index the state machine has applied (at least `snapshot.index`). */
  readonly appliedIndex: Index;
}
