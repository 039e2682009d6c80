// The validated configuration of one raft-node process, with every default in one place
// (documented for users in .env.example).

import { resolve } from 'node:path';
import type { LogLevel } from '../common/logger.js';
import {
  SettingsError, booleanSetting, computeClusterId, formatHostPort, integerSetting, logLevelSetting,
  parseClusterNodes, parseHostPort, type HostPort, type RawSettings,
} from './settings.js';

export interface NodeConfig {
  readonly nodeId: number;
  /** Where the peer port listens, and the address other members dial. */
  readonly peerListen: HostPort;
  readonly peerAdvertise: string;
  readonly httpListen: HostPort;
  readonly httpAdvertise: string;
  /** Founding members, id -> peer address (empty when joining an existing cluster). Only seeds a
   * brand-new cluster: once the data directory holds a membership, the log is the truth. */
  readonly clusterNodes: ReadonlyMap<number, string>;
  /** The id CLUSTER_NODES and CLUSTER_TOKEN give a new cluster ('' without CLUSTER_NODES). The id a
   * node runs with comes from its data directory once it has one. */
  readonly clusterId: string;
  /** Base URLs (http://host:port) of members' APIs, to ask to be added (tried in turn); null to
   * found or resume. */
  readonly join: readonly string[] | null;
  /** The leader promotes a learner to voter once it is within `promoteMaxLagEntries` entries. */
  readonly autoPromote: boolean;
  readonly promoteMaxLagEntries: number;
  /** Recovery from a lost majority: rewrite the membership to this node alone, as a new cluster. */
  readonly forceNewCluster: boolean;
  /** Seed a new single-node cluster from a backup file (GET /cluster/snapshot). */
  readonly restoreFile: string | null;
  readonly dataDir: string;
  readonly tickMs: number;
  readonly electionTimeoutMsMin: number;
  readonly electionTimeoutMsMax: number;
  readonly heartbeatIntervalMs: number;
  readonly logLevel: LogLevel;
  readonly maxValueBytes: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEveryEntries: number;
  readonly snapshotKeepTailEntries: number;
  /** Also record a snapshot point once the write-ahead log grew by this much since the last one. */
  readonly snapshotEveryBytes: number;
  /** The leader compacts history so that at most this many revisions stay readable. */
  readonly historyRetentionRevisions: number;
  /** Replicas hash their state at every multiple of this revision and compare (replica-hash-check.ts). */
  readonly replicaHashEveryRevisions: number;
  /** Unsafe: skip fdatasync. Acknowledged writes can be lost on a machine crash. Never the default. */
  readonly unsafeNoFsync: boolean;
  readonly checkConfigOnly: boolean;
}

export const NODE_DEFAULTS = {
  TICK_MS: 10,
  ELECTION_TIMEOUT_MIN: 150,
  ELECTION_TIMEOUT_MAX: 300,
  HEARTBEAT_INTERVAL: 50,
  MAX_VALUE_BYTES: 1024 * 1024,
  REQUEST_TIMEOUT_MS: 5000,
  SNAPSHOT_EVERY_ENTRIES: 10_000,
  SNAPSHOT_KEEP_TAIL_ENTRIES: 5_000,
  SNAPSHOT_EVERY_BYTES: 64 * 1024 * 1024,
  HISTORY_RETENTION_REVISIONS: 100_000,
  REPLICA_HASH_EVERY_REVISIONS: 100_000,
  PROMOTE_MAX_LAG_ENTRIES: 1000,
} as const;

export function loadNodeConfig(raw: RawSettings, workingDirectory: string): NodeConfig {
  const nodeIdRaw = raw.NODE_ID;
  if (nodeIdRaw === undefined || nodeIdRaw.trim() === '') throw new SettingsError('NODE_ID is required (an integer from 1)');
  const nodeId = integerSetting(raw, 'NODE_ID', 0, 1, 1_000_000);
  const clusterNodes = raw.CLUSTER_NODES === undefined || raw.CLUSTER_NODES.trim() === '' ? new Map<number, string>() : parseClusterNodes(raw.CLUSTER_NODES);
  const join = raw.JOIN === undefined || raw.JOIN.trim() === '' ? null : raw.JOIN.split(',').filter((part) => part.trim() !== '').map(joinUrl);
  const forceNewCluster = booleanSetting(raw, 'FORCE_NEW_CLUSTER', false);
  const restoreFile = raw.RESTORE === undefined || raw.RESTORE.trim() === '' || raw.RESTORE === 'true' ? null : resolve(workingDirectory, raw.RESTORE.trim());
  if (raw.RESTORE === 'true') throw new SettingsError('--restore needs a backup file: --restore FILE');
  const modes = [join !== null ? 'JOIN' : '', forceNewCluster ? '--force-new-cluster' : '', restoreFile !== null ? '--restore' : ''].filter((m) => m !== '');
  if (modes.length > 1) throw new SettingsError(`${modes.join(' and ')} cannot be combined: each starts the node in a different way`);
  const ownListed = clusterNodes.get(nodeId);
  if (clusterNodes.size > 0 && ownListed === undefined && join === null && !forceNewCluster && restoreFile === null) {
    throw new SettingsError(`NODE_ID ${nodeId} is not in CLUSTER_NODES (${clusterNodes.size} listed); to add a node to a running cluster, give JOIN=<a member's HTTP address> instead`);
  }
  const peerListenText = raw.NODE_ADDR ?? ownListed;
  if (peerListenText === undefined) throw new SettingsError('NODE_ADDR is required (host:port of the peer port) when this node is not listed in CLUSTER_NODES');
  const peerListen = parseHostPort(peerListenText, 'NODE_ADDR');
  const peerAdvertise = formatHostPort(parseHostPort(raw.ADVERTISE_ADDR ?? peerListenText, 'ADVERTISE_ADDR'));
  if (ownListed !== undefined && join === null && peerAdvertise !== ownListed) {
    throw new SettingsError(`ADVERTISE_ADDR ${peerAdvertise} (defaults to NODE_ADDR) differs from node ${nodeId}'s entry in CLUSTER_NODES (${ownListed}): set ADVERTISE_ADDR=${ownListed}`);
  }
  const httpListen = parseHostPort(raw.HTTP_ADDR ?? `127.0.0.1:${8080 + nodeId}`, 'HTTP_ADDR');
  const httpAdvertise = formatHostPort(parseHostPort(raw.HTTP_ADVERTISE_ADDR ?? formatHostPort(httpListen), 'HTTP_ADVERTISE_ADDR'));
  const tickMs = integerSetting(raw, 'TICK_MS', NODE_DEFAULTS.TICK_MS, 1, 1000);
  const electionTimeoutMsMin = integerSetting(raw, 'ELECTION_TIMEOUT_MIN', NODE_DEFAULTS.ELECTION_TIMEOUT_MIN, 1, 600_000);
  const electionTimeoutMsMax = integerSetting(raw, 'ELECTION_TIMEOUT_MAX', NODE_DEFAULTS.ELECTION_TIMEOUT_MAX, 1, 600_000);
  const heartbeatIntervalMs = integerSetting(raw, 'HEARTBEAT_INTERVAL', NODE_DEFAULTS.HEARTBEAT_INTERVAL, 1, 600_000);
  if (electionTimeoutMsMax <= electionTimeoutMsMin) throw new SettingsError(`ELECTION_TIMEOUT_MAX (${electionTimeoutMsMax}) must exceed ELECTION_TIMEOUT_MIN (${electionTimeoutMsMin})`);
  if (heartbeatIntervalMs >= electionTimeoutMsMin) throw new SettingsError(`HEARTBEAT_INTERVAL (${heartbeatIntervalMs}) must be below ELECTION_TIMEOUT_MIN (${electionTimeoutMsMin})`);
  if (heartbeatIntervalMs < tickMs) throw new SettingsError(`HEARTBEAT_INTERVAL (${heartbeatIntervalMs}) must be at least TICK_MS (${tickMs})`);
  const snapshotEveryEntries = integerSetting(raw, 'SNAPSHOT_EVERY_ENTRIES', NODE_DEFAULTS.SNAPSHOT_EVERY_ENTRIES, 1);
  const snapshotKeepTailEntries = integerSetting(raw, 'SNAPSHOT_KEEP_TAIL_ENTRIES', NODE_DEFAULTS.SNAPSHOT_KEEP_TAIL_ENTRIES, 0);
  return {
    nodeId,
    peerListen,
    peerAdvertise,
    httpListen,
    httpAdvertise,
    clusterNodes,
    clusterId: clusterNodes.size > 0 ? computeClusterId(clusterNodes, raw.CLUSTER_TOKEN ?? '') : '',
    join,
    autoPromote: booleanSetting(raw, 'AUTO_PROMOTE', true),
    promoteMaxLagEntries: integerSetting(raw, 'PROMOTE_MAX_LAG_ENTRIES', NODE_DEFAULTS.PROMOTE_MAX_LAG_ENTRIES, 0),
    forceNewCluster,
    restoreFile,
    dataDir: resolve(workingDirectory, raw.DATA_DIR ?? `data/node-${nodeId}`),
    tickMs,
    electionTimeoutMsMin,
    electionTimeoutMsMax,
    heartbeatIntervalMs,
    logLevel: logLevelSetting(raw),
    maxValueBytes: integerSetting(raw, 'MAX_VALUE_BYTES', NODE_DEFAULTS.MAX_VALUE_BYTES, 1, 64 * 1024 * 1024),
    requestTimeoutMs: integerSetting(raw, 'REQUEST_TIMEOUT_MS', NODE_DEFAULTS.REQUEST_TIMEOUT_MS, 10, 600_000),
    snapshotEveryEntries,
    snapshotKeepTailEntries,
    snapshotEveryBytes: integerSetting(raw, 'SNAPSHOT_EVERY_BYTES', NODE_DEFAULTS.SNAPSHOT_EVERY_BYTES, 1024),
    historyRetentionRevisions: integerSetting(raw, 'HISTORY_RETENTION_REVISIONS', NODE_DEFAULTS.HISTORY_RETENTION_REVISIONS, 1),
    replicaHashEveryRevisions: integerSetting(raw, 'REPLICA_HASH_EVERY_REVISIONS', NODE_DEFAULTS.REPLICA_HASH_EVERY_REVISIONS, 1),
    unsafeNoFsync: booleanSetting(raw, 'UNSAFE_NO_FSYNC', false),
    checkConfigOnly: booleanSetting(raw, 'CHECK_CONFIG', false),
  };
}

/** One JOIN address: a URL (http://host:port) or host:port of a member's HTTP API, as a base URL. */
export function joinUrl(value: string): string {
  const trimmed = value.trim();
  if (/^https:\/\//i.test(trimmed)) throw new SettingsError(`JOIN: "${value}": the API is plain HTTP (TLS is planned)`);
  return `http://${formatHostPort(parseHostPort(trimmed, 'JOIN'))}`;
}

/** Milliseconds to ticks, rounding so that a timeout never becomes shorter than asked. */
export function msToTicks(ms: number, tickMs: number): number {
  return Math.max(1, Math.ceil(ms / tickMs));
}
