#!/usr/bin/env node
// kv-gateway: a stateless REST front for the cluster. Kill it and start another at any time.

import { ApiHttpServer } from '../api/http-server.js';
import { createLogger } from '../common/logger.js';
import { GatewayBackend } from '../gateway/gateway-backend.js';
import { loadGatewayConfig } from '../gateway/gateway-config.js';
import { PeerClientPool } from '../server/peer-client-pool.js';
import { SettingsError, mergeSources, parseFlags, readDotEnv } from '../server/settings.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadGatewayConfig(mergeSources(parseFlags(process.argv.slice(2)), process.env, readDotEnv(process.cwd())));
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`kv-gateway: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (config.checkConfigOnly) {
    process.stdout.write(`kv-gateway: configuration is valid (cluster ${config.clusterId}, ${config.clusterNodes.size} nodes)\n`);
    return;
  }
  const logger = createLogger(config.logLevel, { component: 'gateway' });
  const peers = new PeerClientPool(config.clusterId, logger);
  const backend = new GatewayBackend(peers, { seedAddresses: [...config.clusterNodes.values()], requestTimeoutMs: config.requestTimeoutMs, maxValueBytes: config.maxValueBytes }, logger);
  const server = new ApiHttpServer(backend, { host: config.listen.host, port: config.listen.port, logger });
  try {
    const address = await server.listen();
    logger.info('gateway listening', { address: `${address.address}:${address.port}`, nodes: [...config.clusterNodes.values()] });
  } catch (error) {
    logger.error('could not listen', { error: (error as Error).message });
    process.exit(1);
  }
  const shutdown = (signal: string): void => {
    logger.info('shutting down', { signal });
    peers.close();
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
