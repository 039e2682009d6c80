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
  /** Founding members, id -> peer address (empty when joining an existing cluster). */
  readonly clusterNodes: ReadonlyMap<number, string>;
  readonly clusterId: string;
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
  readonly historyRetentionRevisions: number;
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
  HISTORY_RETENTION_REVISIONS: 100_000,
} as const;

export function loadNodeConfig(raw: RawSettings, workingDirectory: string): NodeConfig {
  const nodeIdRaw = raw.NODE_ID;
  if (nodeIdRaw === undefined || nodeIdRaw.trim() === '') throw new SettingsError('NODE_ID is required (an integer from 1)');
  const nodeId = integerSetting(raw, 'NODE_ID', 0, 1, 1_000_000);
  if (raw.CLUSTER_NODES === undefined || raw.CLUSTER_NODES.trim() === '') throw new SettingsError('CLUSTER_NODES is required (e.g. localhost:50051,localhost:50052,localhost:50053)');
  const clusterNodes = parseClusterNodes(raw.CLUSTER_NODES);
  const ownListed = clusterNodes.get(nodeId);
  if (ownListed === undefined) throw new SettingsError(`NODE_ID ${nodeId} is not in CLUSTER_NODES (${clusterNodes.size} listed)`);
  const peerListen = parseHostPort(raw.NODE_ADDR ?? ownListed, 'NODE_ADDR');
  const peerAdvertise = formatHostPort(parseHostPort(raw.ADVERTISE_ADDR ?? raw.NODE_ADDR ?? ownListed, 'ADVERTISE_ADDR'));
  if (peerAdvertise !== ownListed) {
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
    clusterId: computeClusterId(clusterNodes, raw.CLUSTER_TOKEN ?? ''),
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
    historyRetentionRevisions: integerSetting(raw, 'HISTORY_RETENTION_REVISIONS', NODE_DEFAULTS.HISTORY_RETENTION_REVISIONS, 1),
    unsafeNoFsync: booleanSetting(raw, 'UNSAFE_NO_FSYNC', false),
    checkConfigOnly: booleanSetting(raw, 'CHECK_CONFIG', false),
  };
}

/** Milliseconds to ticks, rounding so that a timeout never becomes shorter than asked. */
export function msToTicks(ms: number, tickMs: number): number {
  return Math.max(1, Math.ceil(ms / tickMs));
}
