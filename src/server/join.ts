// JOIN: a new node asks a running cluster to add it. First it learns the cluster id (transport
// handshakes need it) from any member's API; after it starts listening it asks to be added as a
// learner, and keeps asking, with backoff, while another change is in flight or no leader answers.
// The leader then sends it a snapshot and the log, and promotes it once it has caught up.

import type { MemberInfo, MembersView, NewMember } from '../api/backend.js';
import type { Logger } from '../common/logger.js';
import type { Membership } from '../raft/types.js';
import { parseMembership } from './founding-record.js';
import { describeAnswer, httpJson, type JsonAnswer } from './http-json.js';
import { StartupError } from './startup-error.js';

const REQUEST_TIMEOUT_MS = 15_000;
const BACKOFF_MS_MIN = 200;
const BACKOFF_MS_MAX = 5000;

export class JoinRefusedError extends StartupError {}

export interface JoinOptions {
  /** Members' API base URLs (JOIN), tried in turn. */
  readonly joinUrls: readonly string[];
  readonly self: NewMember;
  readonly logger: Logger;
  /** True once this process stops: the loops give up quietly. */
  readonly stopped: () => boolean;
}

/** Members' API addresses to try: the JOIN address first, then the others as they become known. */
class Candidates {
  private readonly urls: string[];
  private position = 0;
  constructor(first: readonly string[]) {
    this.urls = [...first];
  }
  get current(): string {
    return this.urls[this.position % this.urls.length];
  }
  next(): void {
    this.position++;
  }
  learn(view: MembersView, selfId: number): void {
    for (const member of view.members) {
      if (member.id === selfId || member.httpAddr === '') continue;
      const url = `http://${member.httpAddr}`;
      if (!this.urls.includes(url)) this.urls.push(url);
    }
  }
}

/** Asks until some member answers with the cluster's members (and id). */
export async function discoverCluster(options: JoinOptions): Promise<MembersView> {
  const candidates = new Candidates(options.joinUrls);
  let backoffMs = BACKOFF_MS_MIN;
  for (let attempt = 1; ; attempt++) {
    if (options.stopped()) throw new JoinRefusedError('stopped while asking the cluster for its members');
    const url = candidates.current;
    try {
      const answer = await httpJson(url, 'GET', '/cluster/members', undefined, REQUEST_TIMEOUT_MS);
      if (answer.status === 200 && isMembersView(answer.body)) return answer.body;
      options.logger.warn('JOIN: the member did not list the cluster; asking again', { url, answer: describeAnswer(answer), attempt });
    } catch (error) {
      options.logger.warn('JOIN: could not reach the member; asking again', { url, error: (error as Error).message, attempt });
    }
    candidates.next();
    // A full round over the addresses given before each wait.
    if (attempt % options.joinUrls.length === 0) {
      await sleep(jitter(backoffMs));
      backoffMs = Math.min(BACKOFF_MS_MAX, backoffMs * 2);
    }
  }
}

/**
 * Asks to be added until the cluster says yes (200), this node sees itself in the membership, or the
 * cluster refuses for good (400: the id or address is taken), which rejects with JoinRefusedError.
 */
export async function askToBeAdded(options: JoinOptions, known: MembersView | null, isMember: () => boolean, learn: (members: readonly MemberInfo[]) => void): Promise<void> {
  const candidates = new Candidates(options.joinUrls);
  if (known !== null) candidates.learn(known, options.self.id);
  let backoffMs = BACKOFF_MS_MIN;
  for (let attempt = 1; !options.stopped() && !isMember(); attempt++) {
    let answer: JsonAnswer;
    try {
      answer = await httpJson(candidates.current, 'POST', '/cluster/members', options.self, REQUEST_TIMEOUT_MS);
    } catch (error) {
      options.logger.warn('JOIN: no answer to the request to be added; asking again', { url: candidates.current, error: (error as Error).message, attempt });
      candidates.next();
      await sleep(jitter(backoffMs));
      backoffMs = Math.min(BACKOFF_MS_MAX, backoffMs * 2);
      continue;
    }
    if (answer.status === 200) {
      const members = (answer.body as { members?: unknown }).members;
      if (Array.isArray(members)) learn(members as MemberInfo[]);
      options.logger.info('JOIN: the cluster added this node as a learner; catching up', { id: options.self.id, via: candidates.current, outcome: (answer.body as { change?: unknown }).change });
      return;
    }
    if (answer.status === 400 || answer.status === 404) {
      throw new JoinRefusedError(`the cluster refused to add node ${options.self.id}: ${describeAnswer(answer)}`);
    }
    // 409 (another change in flight), 503 (no leader), 504 (outcome unknown: ask again, the same
    // request is idempotent), anything else: wait and ask again.
    options.logger.info('JOIN: not added yet; asking again', { answer: describeAnswer(answer), attempt, retryInMs: backoffMs });
    if (answer.status >= 500) candidates.next();
    await sleep(jitter(backoffMs));
    backoffMs = Math.min(BACKOFF_MS_MAX, backoffMs * 2);
  }
}

function isMembersView(value: unknown): value is MembersView {
  const view = value as Partial<MembersView> | null;
  return view !== null && typeof view === 'object' && typeof view.clusterId === 'string' && /^[0-9a-f]{16}$/.test(view.clusterId) && Array.isArray(view.members)
    && (view.bootstrapMembership === undefined || view.bootstrapMembership === null || parseMembership(view.bootstrapMembership) !== undefined);
}

/**
 * The configuration a joining node records at index 0 of its empty log: the one this cluster's log
 * starts from, as the answering member keeps it (founding-record.ts). Null when it says there is
 * none (the cluster began from a snapshot point) or does not say: the leader then sends a snapshot,
 * which replaces index 0 anyway.
 */
export function bootstrapMembershipOf(view: MembersView): Membership | null {
  return view.bootstrapMembership === undefined || view.bootstrapMembership === null ? null : (parseMembership(view.bootstrapMembership) ?? null);
}

function jitter(ms: number): number {
  return ms / 2 + Math.random() * (ms / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
