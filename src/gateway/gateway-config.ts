// Settings of the kv-gateway process: the same sources and precedence as raft-node.

import type { LogLevel } from '../common/logger.js';
import {
  SettingsError, computeClusterId, integerSetting, logLevelSetting, parseClusterNodes, parseHostPort,
  type HostPort, type RawSettings,
} from '../server/settings.js';

export interface GatewayConfig {
  readonly listen: HostPort;
  readonly clusterNodes: ReadonlyMap<number, string>;
  readonly clusterId: string;
  readonly requestTimeoutMs: number;
  readonly maxValueBytes: number;
  readonly logLevel: LogLevel;
  readonly checkConfigOnly: boolean;
}

function clusterIdSetting(raw: RawSettings): string | null {
  const value = raw.CLUSTER_ID?.trim();
  if (value === undefined || value === '') return null;
  if (!/^[0-9a-f]{16}$/.test(value)) throw new SettingsError(`CLUSTER_ID: "${value}" is not a cluster id (16 hex digits, as GET /cluster/members shows)`);
  return value;
}

export function loadGatewayConfig(raw: RawSettings): GatewayConfig {
  if (raw.CLUSTER_NODES === undefined || raw.CLUSTER_NODES.trim() === '') {
    throw new SettingsError('CLUSTER_NODES is required: peer addresses of members to reach the cluster through (the founding list, or any current members with CLUSTER_ID)');
  }
  const clusterNodes = parseClusterNodes(raw.CLUSTER_NODES);
  return {
    listen: parseHostPort(raw.GATEWAY_ADDR ?? '0.0.0.0:8080', 'GATEWAY_ADDR'),
    clusterNodes,
    // A cluster that changed since it was founded (or was re-founded by --force-new-cluster or
    // --restore) has an id CLUSTER_NODES cannot give: GET /cluster/members shows it.
    clusterId: clusterIdSetting(raw) ?? computeClusterId(clusterNodes, raw.CLUSTER_TOKEN ?? ''),
    requestTimeoutMs: integerSetting(raw, 'REQUEST_TIMEOUT_MS', 5000, 10, 600_000),
    maxValueBytes: integerSetting(raw, 'MAX_VALUE_BYTES', 1024 * 1024, 1, 64 * 1024 * 1024),
    logLevel: logLevelSetting(raw),
    checkConfigOnly: raw.CHECK_CONFIG === 'true',
  };
}
