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
    process.stdout.write(`raft-node: configuration is valid (node ${config.nodeId}, cluster ${config.clusterId}, ${config.clusterNodes.size} founding members)\n`);
    return;
  }
  const logger = createLogger(config.logLevel, { nodeId: config.nodeId });
  const node = await startNode(config, logger, (error) => {
    logger.error('stopping after a fatal error', { error });
    process.exit(1);
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
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
