// Cluster membership: who votes, who only learns, and how one change turns into the next
// configuration (Raft thesis chapter 4, single-server changes).

import type { Member, Membership, MembershipChange, NodeId } from './types.js';

export function voterIds(membership: Membership): NodeId[] {
  return membership.members.filter((member) => member.role === 'voter').map((member) => member.id);
}

export function memberIds(membership: Membership): NodeId[] {
  return membership.members.map((member) => member.id);
}

export function findMember(membership: Membership, id: NodeId): Member | undefined {
  return membership.members.find((member) => member.id === id);
}

export function isVoter(membership: Membership, id: NodeId): boolean {
  return findMember(membership, id)?.role === 'voter';
}

/** The configuration after `change`, or a sentence saying why the change makes no sense. */
export function applyMembershipChange(current: Membership, change: MembershipChange): Membership | string {
  const members = current.members;
  switch (change.kind) {
    case 'addVoter':
    case 'addLearner': {
      const role = change.kind === 'addVoter' ? 'voter' : 'learner';
      const existing = findMember(current, change.member.id);
      if (existing !== undefined) {
        if (existing.role === 'learner' && role === 'voter') return promote(current, change.member.id);
        return `node ${change.member.id} is already a member`;
      }
      if (!Number.isInteger(change.member.id) || change.member.id < 1) return `invalid node id ${change.member.id}`;
      return { members: [...members, { ...change.member, role }] };
    }
    case 'promote': {
      const existing = findMember(current, change.id);
      if (existing === undefined) return `node ${change.id} is not a member`;
      if (existing.role === 'voter') return `node ${change.id} is already a voter`;
      return promote(current, change.id);
    }
    case 'remove': {
      const existing = findMember(current, change.id);
      if (existing === undefined) return `node ${change.id} is not a member`;
      const remaining = members.filter((member) => member.id !== change.id);
      if (!remaining.some((member) => member.role === 'voter')) return 'cannot remove the last voter';
      return { members: remaining };
    }
    case 'updateAddresses': {
      const existing = findMember(current, change.id);
      if (existing === undefined) return `node ${change.id} is not a member`;
      if (existing.peerAddr === change.peerAddr && existing.httpAddr === change.httpAddr) return `node ${change.id} already has these addresses`;
      return {
        members: members.map((member) => (member.id === change.id ? { ...member, peerAddr: change.peerAddr, httpAddr: change.httpAddr } : member)),
      };
    }
  }
}

function promote(current: Membership, id: NodeId): Membership {
  return { members: current.members.map((member) => (member.id === id ? { ...member, role: 'voter' as const } : member)) };
}

/**
 * The configurations recorded in the log after a base point, so the core can tell the membership
 * in force at any index it still holds (needed for snapshots) and roll back a change whose entry
 * a new leader overwrote. A configuration takes effect as soon as its entry is in the log.
 */
export class ConfigHistory {
  private baseIndex: number;
  private baseMembership: Membership;
  private readonly changes: { index: number; term: number; membership: Membership }[] = [];

  constructor(baseIndex: number, baseMembership: Membership) {
    this.baseIndex = baseIndex;
    this.baseMembership = baseMembership;
  }

  current(): Membership {
    return this.changes.length > 0 ? this.changes[this.changes.length - 1].membership : this.baseMembership;
  }

  /** Index of the entry that set the current membership (the base index if none did). */
  currentIndex(): number {
    return this.changes.length > 0 ? this.changes[this.changes.length - 1].index : this.baseIndex;
  }

  at(index: number): Membership {
    for (let i = this.changes.length - 1; i >= 0; i--) {
      if (this.changes[i].index <= index) return this.changes[i].membership;
    }
    return this.baseMembership;
  }

  /** A config entry was appended at `index`; entries from `index` on that it replaces are gone. */
  appended(index: number, term: number, membership: Membership): void {
    this.truncateFrom(index);
    this.changes.push({ index, term, membership });
  }

  /** The log lost every entry from `index` on. */
  truncateFrom(index: number): void {
    while (this.changes.length > 0 && this.changes[this.changes.length - 1].index >= index) this.changes.pop();
  }

  /** A snapshot now covers everything up to `index`. */
  compactTo(index: number): void {
    if (index <= this.baseIndex) return;
    this.baseMembership = this.at(index);
    this.baseIndex = index;
    while (this.changes.length > 0 && this.changes[0].index <= index) this.changes.shift();
  }

  reset(index: number, membership: Membership): void {
    this.baseIndex = index;
    this.baseMembership = membership;
    this.changes.length = 0;
  }
}
