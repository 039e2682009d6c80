// Fetches the other members' replica hash checkpoints for the comparison rounds: each member's
// status answer (the peer port's 'status' request) carries its checkpoints.

import type { PeerClientPool } from './peer-client-pool.js';
import { parseCheckpoints, type PeerCheckpoints } from './replica-hash-check.js';
import type { RaftRuntime } from './raft-runtime.js';

/** A peer that does not answer within this is skipped for the round. */
const STATUS_TIMEOUT_MS = 1000;

export function replicaCheckpointFetcher(runtime: RaftRuntime, peers: PeerClientPool, selfId: number): () => Promise<readonly PeerCheckpoints[]> {
  return async () => {
    const others = runtime.node.membership.members.filter((member) => member.id !== selfId);
    const answers = await Promise.all(others.map(async (member): Promise<PeerCheckpoints | null> => {
      try {
        const response = await peers.request(member.peerAddr, { type: 'status' }, STATUS_TIMEOUT_MS);
        if (!response.ok) return null;
        const replicaHash = (response.result as { replicaHash?: { checkpoints?: unknown } }).replicaHash;
        return { nodeId: member.id, checkpoints: parseCheckpoints(replicaHash?.checkpoints) };
      } catch {
        return null; // unreachable this round
      }
    }));
    return answers.filter((answer): answer is PeerCheckpoints => answer !== null);
  };
}
