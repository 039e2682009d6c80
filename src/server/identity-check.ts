// The architecture brief's identity rule: a founding member starting for the first time with an
// empty data directory joins the initial cluster normally, even if the others formed it first; but
// once a member has run, a restart with an empty data directory is refused. Its own disk cannot
// tell the two apart; the cluster can:
//
//   - the leader records the HTTP address of every member that runs (founding members are recorded
//     without one, ClusterAdmin), so a founding member whose address is in the log has run;
//   - a leader's progress says what each follower acknowledged: a match index above 0 means it ran;
//   - a founding member no longer in the membership was removed.
//
// So before founding, a founding member with an empty directory asks the other founding members
// (their peer ports, under the founding cluster id) for their status. Any of the above refuses the
// start: a member that lost its data must not vote or acknowledge again with state it does not
// have (it could elect a leader missing committed writes). When no member answers, nothing shows it
// ran: it founds, as on a first start.

import type { Logger } from '../common/logger.js';
import { findMember } from '../raft/membership.js';
import type { NodeConfig } from './node-config.js';
import { PeerClientPool } from './peer-client-pool.js';
import type { NodeStatusWithAddresses } from './rpc-protocol.js';
import { StartupError } from './startup-error.js';

/** How long each founding member has to answer. */
const STATUS_TIMEOUT_MS = 1000;

/** What one member's status says about node `self` having run before; null when nothing does. */
export function evidenceOfPriorRun(self: number, status: NodeStatusWithAddresses): string | null {
  const members = status.membership?.members;
  if (!Array.isArray(members) || members.length === 0) return null; // a member that knows no membership yet
  const recorded = findMember(status.membership, self);
  if (recorded === undefined) {
    return `node ${status.nodeId}'s membership (index ${status.membershipIndex}) no longer holds it: it was removed`;
  }
  if (recorded.httpAddr !== '') {
    return `node ${status.nodeId}'s membership (index ${status.membershipIndex}) records its HTTP address ${recorded.httpAddr}, which only a running member reports`;
  }
  const acknowledged = status.followers?.find((follower) => follower.id === self)?.matchIndex ?? 0;
  if (status.state === 'leader' && acknowledged > 0) {
    return `node ${status.nodeId}, the leader in term ${status.term}, holds that it acknowledged the log up to index ${acknowledged}`;
  }
  return null;
}

/** Refuses (StartupError) when another founding member shows that this one ran before. */
export async function refuseIfFoundedBefore(config: NodeConfig, logger: Logger): Promise<void> {
  const others = [...config.clusterNodes.entries()].filter(([id]) => id !== config.nodeId);
  if (others.length === 0) return;
  const peers = new PeerClientPool(config.clusterId, logger);
  let answered = 0;
  try {
    const findings = await Promise.all(others.map(async ([id, address]) => {
      try {
        const response = await peers.request(address, { type: 'status' }, STATUS_TIMEOUT_MS);
        if (!response.ok) return null;
        answered++;
        const status = response.result as NodeStatusWithAddresses;
        return status.nodeId === id ? evidenceOfPriorRun(config.nodeId, status) : null;
      } catch {
        return null; // not running yet, or unreachable: no evidence either way
      }
    }));
    const evidence = findings.find((finding) => finding !== null);
    if (evidence !== undefined && evidence !== null) {
      throw new StartupError(`node ${config.nodeId} has run before as a member of cluster ${config.clusterId} (${evidence}), but DATA_DIR ${config.dataDir} is empty: `
        + 'its data is lost, and a member must never vote or acknowledge with state it does not have. Start it with its own data directory, or remove it '
        + `(DELETE /cluster/members/${config.nodeId}, kvctl member remove ${config.nodeId}) and add this machine back with an empty DATA_DIR and `
        + 'JOIN=<a member\'s HTTP address> under an id the cluster never used.');
    }
  } finally {
    peers.close();
  }
  logger.info('first start of a founding member: no other founding member shows that it ran before', { asked: others.length, answered });
}
