// A plain in-memory model of the state machine's rules, written for clarity rather than speed: the
// property test checks the lmdb implementation against it. History is one array of changes; a read
// at a revision scans it. Sessions follow the same rules as sessions.ts.

import { CommandDecodeError, decodeCommand } from '../../../src/kvstore/commands.js';
import { SESSION_IDLE_ENTRIES_MAX, SESSION_IDLE_MS_MAX, SESSION_RESULTS_MAX } from '../../../src/kvstore/sessions.js';
import type { CommandResult, KeyValue } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';

interface Change {
  readonly revision: number;
  readonly key: string;
  readonly kv: KeyValue | null;
}

interface ModelSession {
  lastIndex: number;
  lastProposedAtMs: number;
  ackedSeq: number;
  evictedSeqMax: number;
  readonly results: Map<number, CommandResult>;
}

export class ReferenceModel {
  revision = 1;
  compactedRevision = 0;
  appliedIndex = 0;
  private newestProposedAtMs = 0;
  private readonly changes: Change[] = [];
  private readonly live = new Map<string, KeyValue>();
  private readonly sessions = new Map<string, ModelSession>();

  apply(entry: Entry): CommandResult | undefined {
    if (entry.index !== this.appliedIndex + 1) throw new Error(`model: expected index ${this.appliedIndex + 1}`);
    this.appliedIndex = entry.index;
    if (entry.kind !== 'command') return undefined;
    let command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      if (error instanceof CommandDecodeError) return { kind: 'error', code: error.code, message: error.message };
      throw error;
    }
    this.newestProposedAtMs = Math.max(this.newestProposedAtMs, command.proposedAtMs);
    if (command.op === 'compact') {
      if (command.revision > this.revision) return { kind: 'error', code: 'FUTURE_REVISION', message: '' };
      if (command.revision <= this.compactedRevision) return { kind: 'error', code: 'COMPACTED', message: '' };
      this.compactedRevision = command.revision;
      return { kind: 'compact', compactedRevision: command.revision, revision: this.revision };
    }
    const stamp = command.client;
    if (stamp === undefined) return this.mutate(command);
    let session = this.sessions.get(stamp.clientId);
    if (session !== undefined && (entry.index - session.lastIndex > SESSION_IDLE_ENTRIES_MAX || this.newestProposedAtMs - session.lastProposedAtMs > SESSION_IDLE_MS_MAX)) {
      this.sessions.delete(stamp.clientId);
      session = undefined;
    }
    if (session !== undefined) {
      const remembered = session.results.get(stamp.seq);
      if (remembered !== undefined) return remembered;
      if (stamp.seq <= session.ackedSeq || stamp.seq <= session.evictedSeqMax) return { kind: 'error', code: 'STALE_SEQUENCE', message: '' };
    }
    const result = this.mutate(command);
    const record: ModelSession = session ?? { lastIndex: 0, lastProposedAtMs: 0, ackedSeq: 0, evictedSeqMax: 0, results: new Map() };
    record.ackedSeq = Math.max(record.ackedSeq, stamp.ackedSeq);
    for (const seq of [...record.results.keys()]) if (seq <= record.ackedSeq) record.results.delete(seq);
    record.results.set(stamp.seq, result);
    const seqs = [...record.results.keys()].sort((a, b) => a - b);
    while (seqs.length > SESSION_RESULTS_MAX) {
      const oldest = seqs.shift() as number;
      record.results.delete(oldest);
      record.evictedSeqMax = Math.max(record.evictedSeqMax, oldest);
    }
    record.lastIndex = entry.index;
    record.lastProposedAtMs = command.proposedAtMs;
    this.sessions.set(stamp.clientId, record);
    return result;
  }

  private mutate(command: { readonly op: 'put'; readonly key: string; readonly value: string } | { readonly op: 'delete'; readonly key: string }): CommandResult {
    const current = this.live.get(command.key);
    if (command.op === 'delete') {
      if (current === undefined) return { kind: 'delete', key: command.key, deleted: false, revision: this.revision };
      this.revision += 1;
      this.live.delete(command.key);
      this.changes.push({ revision: this.revision, key: command.key, kv: null });
      return { kind: 'delete', key: command.key, deleted: true, revision: this.revision };
    }
    this.revision += 1;
    const kv: KeyValue = {
      key: command.key,
      value: command.value,
      createRevision: current?.createRevision ?? this.revision,
      modRevision: this.revision,
      version: (current?.version ?? 0) + 1,
    };
    this.live.set(command.key, kv);
    this.changes.push({ revision: this.revision, key: command.key, kv });
    return { kind: 'put', ...kv, revision: this.revision };
  }

  /** Like KvStateMachine.get: throws an error with the same code for unreadable revisions. */
  get(key: string, atRevision?: number): KeyValue | null {
    if (atRevision === undefined) return this.live.get(key) ?? null;
    if (atRevision > this.revision) throw Object.assign(new Error('future'), { code: 'FUTURE_REVISION' });
    if (atRevision < this.compactedRevision) throw Object.assign(new Error('compacted'), { code: 'COMPACTED' });
    let found: KeyValue | null = null;
    for (const change of this.changes) {
      if (change.revision > atRevision) break;
      if (change.key === key) found = change.kv;
    }
    return found;
  }

  /** How many changes etcd's compaction rule keeps: per key, all above the compacted revision,
   * plus the latest at or below it unless that is a delete. */
  retainedChanges(): number {
    const latestAtOrBelow = new Map<string, Change>();
    let above = 0;
    for (const change of this.changes) {
      if (change.revision > this.compactedRevision) above += 1;
      else latestAtOrBelow.set(change.key, change);
    }
    return above + [...latestAtOrBelow.values()].filter((change) => change.kv !== null).length;
  }

  /** Retained changes that have a checkpoint entry: every tombstone, every 64th version. */
  retainedCheckpoints(every: number): number {
    const latestAtOrBelow = new Map<string, Change>();
    let above = 0;
    for (const change of this.changes) {
      if (change.revision > this.compactedRevision) above += change.kv === null || change.kv.version % every === 0 ? 1 : 0;
      else latestAtOrBelow.set(change.key, change);
    }
    return above + [...latestAtOrBelow.values()].filter((change) => change.kv !== null && change.kv.version % every === 0).length;
  }

  /** Keys deleted now whose tombstone is above the compacted revision (so history keeps it). */
  gravesRetained(): number {
    const latest = new Map<string, Change>();
    for (const change of this.changes) latest.set(change.key, change);
    return [...latest.values()].filter((change) => change.kv === null && change.revision > this.compactedRevision).length;
  }

  get liveKeys(): number {
    return this.live.size;
  }
}

/** Results compared the way clients see them: error answers by code only. */
export function comparable(result: CommandResult | undefined): unknown {
  if (result === undefined || result.kind !== 'error') return result;
  return { kind: 'error', code: result.code };
}
