// What the HTTP API needs from whatever serves it: a node (which proposes or forwards) or the
// gateway (which forwards to the leader). Both speak the same shapes and the same error catalogue.

export interface ClientStamp {
  readonly clientId: string;
  readonly seq: number;
  readonly ackedSeq: number;
}

export type ReadConsistency = 'linearizable' | 'stale';

/** A key's value with etcd's metadata, and the store's revision when it was read or written. */
export interface KvRecord {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly revision: number;
}

export interface DeleteOutcome {
  readonly key: string;
  readonly deleted: boolean;
  readonly revision: number;
}

export interface HealthReport {
  readonly healthy: boolean;
  readonly body: Readonly<Record<string, unknown>>;
}

export interface KvBackend extends ClusterBackend {
  readonly maxValueBytes: number;
  put(key: string, value: string, stamp: ClientStamp | undefined): Promise<KvRecord>;
  delete(key: string, stamp: ClientStamp | undefined): Promise<DeleteOutcome>;
  /** null when the key is absent (at that revision). */
  get(key: string, consistency: ReadConsistency, revision: number | undefined): Promise<KvRecord | null>;
  health(): Promise<HealthReport>;
  clusterStatus(): Promise<unknown>;
}

// ---- Cluster administration -------------------------------------------------------------------

export type MemberRole = 'voter' | 'learner';

export interface MemberInfo {
  readonly id: number;
  readonly peerAddr: string;
  /** '' until the leader has learned a founding member's advertised HTTP address. */
  readonly httpAddr: string;
  readonly role: MemberRole;
  /** Leader's view only: the highest log index known to match the leader's. */
  readonly matchIndex?: number;
  /** Leader's view only: within the promotion threshold of the leader's last index. */
  readonly caughtUp?: boolean;
  /** Leader's view only: a Raft message arrived from it recently. */
  readonly live?: boolean;
}

export interface MembersView {
  readonly clusterId: string;
  readonly leader: number;
  readonly term: number;
  /** The log index of the configuration shown. */
  readonly membershipIndex: number;
  /** Whose view this is: the leader's (with progress), or a node's own when no leader answered. */
  readonly view: 'leader' | 'local';
  readonly nodeId: number;
  readonly members: readonly MemberInfo[];
  /** The configuration at index 0 of the answering node's log, or null once its log no longer
   * reaches back there. A node joining with an empty log records it at index 0, as the founders
   * did, so that its log agrees with the members' logs from the first entry on. */
  readonly bootstrapMembership?: { readonly members: readonly MemberInfo[] } | null;
}

export interface NewMember {
  readonly id: number;
  readonly peerAddr: string;
  readonly httpAddr: string;
}

export interface ChangeOptions {
  /** Override the live-quorum and catch-up checks. */
  readonly force: boolean;
}

export interface MemberChangeOutcome {
  readonly change: 'added' | 'removed' | 'promoted' | 'unchanged';
  readonly id: number;
  /** The log index of the configuration entry (0 when nothing changed). */
  readonly index: number;
  readonly members: readonly MemberInfo[];
}

export interface TransferOutcome {
  readonly previousLeader: number;
  readonly leader: number;
  readonly tookMs: number;
}

/** A response body streamed rather than serialised (GET /cluster/snapshot). */
export interface StreamBody {
  readonly contentType: string;
  readonly fileName: string;
  readonly chunks: AsyncIterable<Uint8Array>;
}

/** Membership and leadership operations; a node routes them to its leader, like writes. */
export interface ClusterBackend {
  members(): Promise<MembersView>;
  addMember(member: NewMember, options: ChangeOptions): Promise<MemberChangeOutcome>;
  removeMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome>;
  promoteMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome>;
  /** To `id`, or to the most up-to-date voter when null. */
  transferLeader(id: number | null): Promise<TransferOutcome>;
  /** A consistent, checksummed backup of the state machine (src/server/backup.ts). */
  snapshot(): Promise<StreamBody>;
}
