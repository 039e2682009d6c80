// What the suite needs of a 3-member cluster under test, ours or etcd: start it, find its leader,
// kill and restart members by PID, read their memory, stop it. Neither is ever running while the
// other is (ensured by the caller: every case starts one and stops it before the next starts).

import type { SystemKind } from './requests.js';

/** How long a member may take to stop after SIGTERM before it gets SIGKILL. */
export const STOP_GRACE_MS = 3000;

export interface Member {
  readonly id: number;
  readonly apiPort: number;
  readonly pid: number | null;
}

export interface MemberMemory {
  readonly id: number;
  readonly pid: number;
  readonly role: 'leader' | 'follower' | 'unknown';
  readonly peakRssBytes: number;
  readonly rssBytes: number;
  /** Of rssBytes: anonymous memory (heaps) and mapped files (the database's pages). */
  readonly rssAnonBytes: number;
  readonly rssFileBytes: number;
  /** JS heap (ours, through the heap probe) or Go heap in use (etcd, from /metrics); NaN if unknown. */
  readonly heapUsedBytes: number;
  /** Highest heap seen (sampled ten times a second); NaN if unknown. */
  readonly heapPeakBytes: number;
}

export interface SystemUnderTest {
  readonly kind: Exclude<SystemKind, 'trivial'>;
  readonly label: string;
  /** Starts every member; resolves once exactly one leader serves. */
  start(): Promise<Member>;
  /** The member that leads now (waits for one, up to timeoutMs; fails at once if every member exited). */
  leader(timeoutMs?: number): Promise<Member>;
  /** Whether `member` says it leads (one status request, no waiting). */
  leads(member: Member): Promise<boolean>;
  members(): readonly Member[];
  startMember(id: number): void;
  killMember(id: number, signal: NodeJS.Signals): Promise<void>;
  /** Stops every member (`leaderId`, when given, first). */
  stop(leaderId?: number): Promise<void>;
  memory(leaderId: number): Promise<MemberMemory[]>;
  pids(): number[];
  logTail(lines?: number): string;
}
