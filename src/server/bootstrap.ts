// How a node comes up, decided from its data directory first and its settings second:
//
//   data directory holds a membership  -> resume; the log is the truth, CLUSTER_NODES is ignored
//   empty, JOIN given                  -> learn the cluster id from a member, join as a learner
//   empty, CLUSTER_NODES lists us      -> found the cluster: record the founding membership (unless
//                                         the other founders show that we ran before: identity-check.ts)
//   --force-new-cluster                -> a survivor of a lost majority becomes a new 1-node cluster
//   --restore FILE (empty directory)   -> a new 1-node cluster seeded from a backup
//
// The founding membership is recorded at index 0 (a snapshot point with no data) so that a restart
// never needs CLUSTER_NODES again, and in FOUNDING (founding-record.ts), which outlives compaction:
// a joining node records the same configuration at its own index 0. Founding members are recorded
// without HTTP addresses (no founder can know another's); the leader records them in the log later
// (ClusterAdmin).

import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import type { KvStateMachine } from '../kvstore/state-machine.js';
import { findMember } from '../raft/membership.js';
import type { ConfigEntry, HardState, Member, Membership, RaftInitialState, SnapshotMeta } from '../raft/types.js';
import type { DataDir, Identity } from '../storage/data-dir.js';
import type { RaftLogStore, RecoveredLog } from '../storage/wal.js';
import { BackupFormatError, backupBody, verifyBackupFile } from './backup.js';
import { bootstrapMembershipOf, discoverCluster } from './join.js';
import type { NodeConfig } from './node-config.js';
import { readFoundingRecord, writeFoundingRecord } from './founding-record.js';
import { refuseIfFoundedBefore } from './identity-check.js';
import { readRemovalRecord } from './removal-marker.js';
import { StartupError } from './startup-error.js';

export interface Bootstrapped {
  /** The cluster id this node runs with (its data directory's, once it has one). */
  readonly clusterId: string;
  readonly initial: RaftInitialState;
  /** The membership at the initial applied index. */
  readonly appliedMembership: Membership;
  /** Whether to ask JOIN to add this node (it is not in the membership it knows). */
  readonly joining: boolean;
  /** How it came up, for the log. */
  readonly mode: 'resumed' | 'founded' | 'joining' | 'forced-new-cluster' | 'restored';
  /** Members a joining node learned of before the log told it (it must be able to answer them). */
  readonly knownPeers: readonly { readonly id: number; readonly peerAddr: string }[];
  /** The configuration at index 0 of this cluster's log, for nodes that join (null: none, or not
   * known to this node; a joining node told so starts from nothing and is sent a snapshot). */
  readonly bootstrapMembership: Membership | null;
}

export interface BootstrapContext {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly dataDir: DataDir;
  readonly wal: RaftLogStore;
  readonly recovered: RecoveredLog;
  readonly kv: KvStateMachine;
  /** False once the process is stopping (JOIN discovery gives up). */
  readonly running: () => boolean;
}

const NO_MEMBERS: Membership = { members: [] };

export async function bootstrap(context: BootstrapContext): Promise<Bootstrapped> {
  const { config, dataDir, recovered } = context;
  const identity = dataDir.readIdentity();
  if (identity !== null && identity.nodeId !== config.nodeId) {
    throw new StartupError(`data directory ${config.dataDir} belongs to node ${identity.nodeId}, not NODE_ID ${config.nodeId}`);
  }
  const removal = await readRemovalRecord(config.dataDir);
  if (removal !== null) {
    throw new StartupError(`this node was removed from cluster ${removal.clusterId} (configuration at index ${removal.index}: ${removal.how}) and does not take part again. `
      + `To add this machine back, start it with an empty DATA_DIR and JOIN=<a member's HTTP address>.`);
  }
  const holdsData = recovered.snapshot !== null || recovered.entries.length > 0 || context.kv.appliedIndex > 0;
  if (config.restoreFile !== null) {
    if (identity !== null || holdsData) throw new StartupError(`--restore needs an empty DATA_DIR, and ${config.dataDir} already holds a node's data (if the restore already ran, start without --restore)`);
    return restoreFromBackup(context, config.restoreFile);
  }
  if (config.forceNewCluster) {
    if (identity === null || !holdsData) throw new StartupError(`--force-new-cluster needs the data directory of a surviving member, and ${config.dataDir} holds none`);
    return forceNewCluster(context, identity);
  }
  if (identity !== null) return resume(context, identity);
  if (holdsData) {
    throw new StartupError(`data directory ${config.dataDir} holds data but no identity file, so it cannot tell which cluster it belongs to `
      + '(an interrupted --restore leaves it so: empty DATA_DIR and run the restore again)');
  }
  if (config.join !== null) return joinNew(context);
  if (config.clusterNodes.size > 0) {
    await refuseIfFoundedBefore(config, context.logger);
    return found(context);
  }
  throw new StartupError('a new data directory needs CLUSTER_NODES (to found a cluster) or JOIN=<a member\'s HTTP address> (to join a running one)');
}

/** The membership the recovered log ends with (null when it records none). */
export function recordedMembership(recovered: RecoveredLog): { membership: Membership; index: number } | null {
  for (let i = recovered.entries.length - 1; i >= 0; i--) {
    const entry = recovered.entries[i];
    if (entry.kind === 'config' && (recovered.snapshot === null || entry.index > recovered.snapshot.index)) return { membership: entry.membership, index: entry.index };
  }
  return recovered.snapshot === null ? null : { membership: recovered.snapshot.membership, index: recovered.snapshot.index };
}

/** The founding membership, identical on every founding member (addresses as listed). */
export function foundingMembership(config: NodeConfig): Membership {
  return {
    members: [...config.clusterNodes.entries()].sort(([a], [b]) => a - b).map(([id, peerAddr]) => ({
      id, role: 'voter' as const, peerAddr, httpAddr: '',
    })),
  };
}

export function initialRaftState(recovered: RecoveredLog, base: Membership, stateMachineAppliedIndex: number): RaftInitialState {
  const snapshot = recovered.snapshot ?? { index: 0, term: 0, membership: base };
  const lastIndex = recovered.entries.length > 0 ? recovered.entries[recovered.entries.length - 1].index : snapshot.index;
  const commitIndex = Math.min(Math.max(recovered.hardState.commitIndex, snapshot.index), Math.max(lastIndex, snapshot.index));
  // The engine may be ahead of the log's commit (a snapshot installed just before a crash): the core
  // then hands those entries out again and the engine skips what it already applied.
  const appliedIndex = Math.max(snapshot.index, Math.min(stateMachineAppliedIndex, commitIndex));
  return { hardState: { ...recovered.hardState, commitIndex }, snapshot, entries: recovered.entries, appliedIndex };
}

/** The membership in force at `initial.appliedIndex`. */
export function membershipAtApplied(initial: RaftInitialState): Membership {
  let membership = initial.snapshot.membership;
  for (const entry of initial.entries) {
    if (entry.kind === 'config' && entry.index > initial.snapshot.index && entry.index <= initial.appliedIndex) membership = entry.membership;
  }
  return membership;
}

function newClusterId(): string {
  return randomBytes(8).toString('hex');
}

function selfMember(config: NodeConfig): Member {
  return { id: config.nodeId, role: 'voter', peerAddr: config.peerAdvertise, httpAddr: config.httpAdvertise };
}

function result(context: BootstrapContext, clusterId: string, recovered: RecoveredLog, base: Membership, mode: Bootstrapped['mode'], bootstrapMembership: Membership | null): Bootstrapped {
  const initial = initialRaftState(recovered, base, context.kv.appliedIndex);
  const current = recordedMembership(recovered)?.membership ?? base;
  const isMember = findMember(current, context.config.nodeId) !== undefined;
  return { clusterId, initial, appliedMembership: membershipAtApplied(initial), joining: !isMember && context.config.join !== null, mode, knownPeers: [], bootstrapMembership };
}

/**
 * The configuration this cluster's log starts from, as FOUNDING keeps it. A directory without the
 * record (older than it, or a crash came first) still has it while its log reaches back to index 0:
 * it is recorded then. Otherwise null: not known here.
 */
async function recordedFounding(context: BootstrapContext, clusterId: string, recovered: RecoveredLog): Promise<Membership | null> {
  const record = await readFoundingRecord(context.config.dataDir);
  if (record !== null) return record.membership;
  const origin = recovered.snapshot;
  if (origin === null || origin.index !== 0 || origin.membership.members.length === 0) return null;
  await writeFoundingRecord(context.config.dataDir, { clusterId, membership: origin.membership });
  return origin.membership;
}

async function resume(context: BootstrapContext, identity: Identity): Promise<Bootstrapped> {
  const { config, logger, recovered } = context;
  const recorded = recordedMembership(recovered);
  if (recorded !== null) {
    if (config.clusterNodes.size > 0) {
      logger.info('CLUSTER_NODES ignored: the data directory holds the membership, and the log is the truth', {
        membershipIndex: recorded.index, members: recorded.membership.members.map((m) => `${m.id}=${m.peerAddr}`).join(','),
      });
    }
    if (findMember(recorded.membership, config.nodeId) === undefined && config.join === null) {
      logger.warn('this node is not in the membership it knows: if it was never added, start it with JOIN=<a member\'s HTTP address>', { membershipIndex: recorded.index });
    }
    return result(context, identity.clusterId, recovered, recorded.membership, 'resumed', await recordedFounding(context, identity.clusterId, recovered));
  }
  // No membership recorded: a founding member whose directory predates recorded founding
  // memberships, or a joining node that has not received its configuration yet.
  if (config.join === null && config.clusterNodes.has(config.nodeId) && identity.clusterId === config.clusterId) {
    const founding = foundingMembership(config);
    await context.wal.compact({ index: 0, term: 0, membership: founding }, 0);
    await writeFoundingRecord(config.dataDir, { clusterId: identity.clusterId, membership: founding });
    logger.info('founding membership recorded in the log', { members: founding.members.map((m) => `${m.id}=${m.peerAddr}`).join(',') });
    return result(context, identity.clusterId, { ...recovered, snapshot: { index: 0, term: 0, membership: founding } }, founding, 'resumed', founding);
  }
  if (config.join === null) logger.warn('this node has not received a membership yet: start it with JOIN=<a member\'s HTTP address> to ask to be added');
  return result(context, identity.clusterId, recovered, NO_MEMBERS, 'joining', await recordedFounding(context, identity.clusterId, recovered));
}

async function found(context: BootstrapContext): Promise<Bootstrapped> {
  const { config, logger, dataDir, recovered } = context;
  const founding = foundingMembership(config);
  const snapshot: SnapshotMeta = { index: 0, term: 0, membership: founding };
  // Identity first: a crash before the membership is recorded leaves a directory that resume()
  // completes; the other order would leave a log without an identity. FOUNDING last: a crash
  // before it leaves it to recordedFounding(), from the log's index 0.
  await dataDir.writeIdentity({ clusterId: config.clusterId, nodeId: config.nodeId, createdAt: new Date().toISOString() });
  await context.wal.compact(snapshot, 0);
  await writeFoundingRecord(config.dataDir, { clusterId: config.clusterId, membership: founding });
  logger.info('founding a new cluster (or joining it as a founding member)', { clusterId: config.clusterId, members: founding.members.map((m) => `${m.id}=${m.peerAddr}`).join(',') });
  return result(context, config.clusterId, { ...recovered, snapshot }, founding, 'founded', founding);
}

async function joinNew(context: BootstrapContext): Promise<Bootstrapped> {
  const { config, logger, dataDir, recovered } = context;
  if (config.join === null) throw new StartupError('JOIN is not set');
  if (config.clusterNodes.size > 0) logger.info('CLUSTER_NODES ignored: JOIN is given, so this node joins a running cluster', { join: config.join });
  logger.info('JOIN: asking the cluster who its members are', { join: config.join });
  const view = await discoverCluster({ joinUrls: config.join, logger, stopped: () => !context.running(), self: { id: config.nodeId, peerAddr: config.peerAdvertise, httpAddr: config.httpAdvertise } });
  const existing = view.members.find((member) => member.id === config.nodeId);
  if (existing !== undefined && existing.peerAddr !== config.peerAdvertise) {
    throw new StartupError(`NODE_ID ${config.nodeId} is already a member of cluster ${view.clusterId}, at ${existing.peerAddr}: give this node an id not in use (GET /cluster/members lists them), or remove node ${config.nodeId} first`);
  }
  const clash = view.members.find((member) => member.peerAddr === config.peerAdvertise && member.id !== config.nodeId);
  if (clash !== undefined) {
    throw new StartupError(`peer address ${config.peerAdvertise} belongs to member ${clash.id} of cluster ${view.clusterId}: remove it first (DELETE /cluster/members/${clash.id}) or advertise another address`);
  }
  // Index 0 of this empty log must hold what index 0 of the members' logs holds: the leader may
  // replicate from entry 1, and a snapshot this node takes before its first configuration entry
  // records the configuration at index 0.
  const learned = bootstrapMembershipOf(view);
  const base = learned ?? NO_MEMBERS;
  const reused = findMember(base, config.nodeId);
  if (reused !== undefined) {
    throw new StartupError(`NODE_ID ${config.nodeId} is a founding member of cluster ${view.clusterId} (at ${reused.peerAddr}, in the configuration its log starts from): `
      + 'a node joining with an empty DATA_DIR needs an id the cluster never used (GET /cluster/members lists the members), or that member\'s own data directory back');
  }
  // Identity first, as found() does; a crash before the base is in the log leaves a joining node
  // that resume() starts with no membership, which is what an unknown base means anyway.
  await dataDir.writeIdentity({ clusterId: view.clusterId, nodeId: config.nodeId, createdAt: new Date().toISOString() });
  const snapshot: SnapshotMeta = { index: 0, term: 0, membership: base };
  if (base.members.length > 0) await context.wal.compact(snapshot, 0);
  await writeFoundingRecord(config.dataDir, { clusterId: view.clusterId, membership: learned });
  logger.info('JOIN: cluster found; this node will ask to be added as a learner', {
    clusterId: view.clusterId, leader: view.leader, members: view.members.length,
    bootstrapMembership: base.members.length > 0 ? base.members.map((m) => `${m.id}=${m.peerAddr}`).join(',') : 'unknown (the leader will send a snapshot)',
  });
  return { ...result(context, view.clusterId, { ...recovered, snapshot }, base, 'joining', learned), knownPeers: view.members };
}

/**
 * Recovery from a lost majority: this survivor keeps its whole log, commits all of it, and appends
 * a configuration holding only itself, under a new cluster id (so members of the old cluster can
 * never reach it). Writes it never received are gone.
 */
async function forceNewCluster(context: BootstrapContext, identity: Identity): Promise<Bootstrapped> {
  const { config, logger, recovered, dataDir } = context;
  const lastEntry = recovered.entries.length > 0 ? recovered.entries[recovered.entries.length - 1] : null;
  const lastIndex = lastEntry?.index ?? recovered.snapshot?.index ?? 0;
  const term = Math.max(1, recovered.hardState.term, lastEntry?.term ?? 0, recovered.snapshot?.term ?? 0);
  const membership: Membership = { members: [selfMember(config)] };
  const entry: ConfigEntry = { kind: 'config', term, index: lastIndex + 1, membership };
  const hardState: HardState = { term, votedFor: recovered.hardState.term === term ? recovered.hardState.votedFor : 0, commitIndex: entry.index };
  // The new cluster id first: after a crash in between, this node can no longer talk to the old
  // cluster (safe), and running --force-new-cluster again completes the job.
  const clusterId = newClusterId();
  await dataDir.writeIdentity({ clusterId, nodeId: config.nodeId, createdAt: new Date().toISOString() });
  await context.wal.save({ hardState, entries: [entry], snapshot: null });
  logger.warn('FORCE-NEW-CLUSTER: this node is now a new single-node cluster built from its own data; writes it never received are lost. '
    + 'Start it without --force-new-cluster from now on, and add members with JOIN.', {
    previousClusterId: identity.clusterId, clusterId, keptUpToIndex: lastIndex, previouslyCommittedIndex: recovered.hardState.commitIndex,
    entriesCommittedByForce: Math.max(0, lastIndex - recovered.hardState.commitIndex), configIndex: entry.index, term,
  });
  const base = recordedMembership(recovered)?.membership ?? NO_MEMBERS;
  // The log is kept from its start, so the configuration it starts from stays what it was.
  const founding = await recordedFounding(context, clusterId, recovered);
  return result(context, clusterId, { ...recovered, hardState, entries: [...recovered.entries, entry] }, base, 'forced-new-cluster', founding);
}

/** A new single-node cluster whose state is exactly the backup's. */
async function restoreFromBackup(context: BootstrapContext, file: string): Promise<Bootstrapped> {
  const { config, logger, dataDir, kv } = context;
  let verified;
  try {
    verified = await verifyBackupFile(file);
  } catch (error) {
    if (error instanceof BackupFormatError || (error as NodeJS.ErrnoException).code === 'ENOENT') throw new StartupError(`cannot restore from ${file}: ${(error as Error).message}`);
    throw error;
  }
  const { meta } = verified;
  logger.info('restoring from a backup', { file, sourceClusterId: meta.clusterId, sourceNodeId: meta.nodeId, index: meta.index, revision: meta.revision, createdAt: meta.createdAt });
  const installed = await kv.importSnapshot(backupBody(file, verified));
  if (installed.appliedIndex !== meta.index) throw new StartupError(`the backup's state machine is at index ${installed.appliedIndex}, but its header says ${meta.index}: the file is inconsistent`);
  const term = Math.max(1, meta.term);
  const snapshot: SnapshotMeta = { index: meta.index, term, membership: { members: [selfMember(config)] } };
  const hardState: HardState = { term, votedFor: 0, commitIndex: meta.index };
  await context.wal.save({ hardState, entries: [], snapshot });
  const clusterId = newClusterId();
  // This cluster's log starts at the backup's index: nothing at index 0 for a joining node to copy
  // (each is sent a snapshot), unless the backup itself is at index 0.
  const founding = meta.index === 0 ? snapshot.membership : null;
  await writeFoundingRecord(config.dataDir, { clusterId, membership: founding });
  await dataDir.writeIdentity({ clusterId, nodeId: config.nodeId, createdAt: new Date().toISOString() });
  logger.warn('RESTORED: this node is a new single-node cluster holding exactly the backup; add members with JOIN. Start it without --restore from now on.', {
    clusterId, index: meta.index, revision: installed.revision,
  });
  return result(context, clusterId, { hardState, snapshot, entries: [], tornBytesCut: 0 }, snapshot.membership, 'restored', founding);
}
