// Majority arithmetic, kept apart from everything else so it can be checked on its own.

import { invariant } from './assert.js';
import type { Index, NodeId } from './types.js';

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** The highest index held by a majority of voters, given each voter's match index. */
export function quorumIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => Index): Index {
  invariant(voters.length > 0, 'no voters to count');
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[majority(voters.length) - 1];
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

/** Tally of an election among `voters`; `votes` maps a voter to its answer. */
export function voteOutcome(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const needed = majority(voters.length);
  if (granted >= needed) return 'won';
  if (rejected > voters.length - needed) return 'lost';
  return 'pending';
}

/** Whether the ids in `heard` include a majority of `voters`. */
export function hasQuorum(voters: readonly NodeId[], heard: (id: NodeId) => boolean): boolean {
  return voters.filter(heard).length >= majority(voters.length);
}
