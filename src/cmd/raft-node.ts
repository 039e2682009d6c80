#!/usr/bin/env node
// raft-node: one member of a cluster. Settings come from flags, the environment or ./.env.

import { createLogger } from '../common/logger.js';
import { loadNodeConfig } from '../server/node-config.js';
import { startNode } from '../server/node-process.js';
import { SettingsError, mergeSources, parseFlags, readDotEnv } from '../server/settings.js';

async function main(): Promise<void> {
  let config;
  try {
    const raw = mergeSources(parseFlags(process.argv.slice(2)), process.env, readDotEnv(process.cwd()));
    config = loadNodeConfig(raw, process.cwd());
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`raft-node: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (config.checkConfigOnly) {
    const how = config.join !== null ? `joins through ${config.join.join(', ')}`
      : config.restoreFile !== null ? `restores ${config.restoreFile}`
      : config.forceNewCluster ? 'forces a new single-node cluster from its data'
      : config.clusterNodes.size > 0 ? `cluster ${config.clusterId}, ${config.clusterNodes.size} founding members`
      : 'resumes from its data directory';
    process.stdout.write(`raft-node: configuration is valid (node ${config.nodeId}; ${how})\n`);
    return;
  }
  const logger = createLogger(config.logLevel, { nodeId: config.nodeId });
  let shutdownFor: ((signal: string) => void) | null = null;
  const node = await startNode(config, logger, {
    onFatal: (error) => {
      logger.error('stopping after a fatal error', { error: error.message });
      process.exit(1);
    },
    onRemoved: (removal) => {
      logger.warn('removed from the cluster: this node no longer takes part and exits. To add this machine again, empty its DATA_DIR and start it with JOIN', { index: removal.index, how: removal.how });
      // Let the answer to the request that removed us leave first.
      setTimeout(() => shutdownFor?.('removed from the cluster'), 200);
    },
  }).catch((error: Error) => {
    logger.error('could not start', { error: error.message });
    process.exit(1);
  });
  let signalled = false;
  const shutdown = (signal: string): void => {
    if (signalled) return;
    signalled = true;
    logger.info('shutting down', { signal });
    node.stop(1000).then(() => process.exit(0), (error: Error) => {
      logger.error('unclean shutdown', { error });
      process.exit(1);
    });
  };
  shutdownFor = shutdown;
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
