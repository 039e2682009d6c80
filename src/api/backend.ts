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

export interface KvBackend {
  readonly maxValueBytes: number;
  put(key: string, value: string, stamp: ClientStamp | undefined): Promise<KvRecord>;
  delete(key: string, stamp: ClientStamp | undefined): Promise<DeleteOutcome>;
  /** null when the key is absent (at that revision). */
  get(key: string, consistency: ReadConsistency, revision: number | undefined): Promise<KvRecord | null>;
  health(): Promise<HealthReport>;
  clusterStatus(): Promise<unknown>;
}
