// Settings for membership: JOIN, AUTO_PROMOTE, PROMOTE_MAX_LAG_ENTRIES, --force-new-cluster,
// --restore; CLUSTER_NODES optional once a data directory exists; the gateway's CLUSTER_ID.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadGatewayConfig } from '../../../src/gateway/gateway-config.js';
import { joinUrl, loadNodeConfig } from '../../../src/server/node-config.js';
import { parseFlags, SettingsError } from '../../../src/server/settings.js';

const CN = 'a:1,b:2,c:3';

test('founding: CLUSTER_NODES as before, with membership defaults', () => {
  const config = loadNodeConfig({ NODE_ID: '2', CLUSTER_NODES: CN }, '/w');
  assert.equal(config.peerAdvertise, 'b:2');
  assert.match(config.clusterId, /^[0-9a-f]{16}$/);
  assert.equal(config.join, null);
  assert.equal(config.autoPromote, true);
  assert.equal(config.promoteMaxLagEntries, 1000);
  assert.equal(config.forceNewCluster, false);
  assert.equal(config.restoreFile, null);
});

test('JOIN instead of CLUSTER_NODES: a URL or host:port; NODE_ADDR is then required', () => {
  const config = loadNodeConfig({ NODE_ID: '7', JOIN: 'http://10.0.0.1:8081/', NODE_ADDR: '10.0.0.7:50051' }, '/w');
  assert.deepEqual(config.join, ['http://10.0.0.1:8081']);
  assert.equal(config.clusterId, '', 'learned from the cluster, not computed');
  assert.equal(config.clusterNodes.size, 0);
  assert.deepEqual(loadNodeConfig({ NODE_ID: '7', JOIN: '10.0.0.1:8081, 10.0.0.2:8081', NODE_ADDR: 'x:1' }, '/w').join, ['http://10.0.0.1:8081', 'http://10.0.0.2:8081'], 'several members, tried in turn');
  assert.throws(() => loadNodeConfig({ NODE_ID: '7', JOIN: '10.0.0.1:8081' }, '/w'), /NODE_ADDR is required/);
  assert.throws(() => joinUrl('https://x:1'), /plain HTTP/);
  assert.throws(() => joinUrl('nonsense'), SettingsError);
});

test('a node not listed in CLUSTER_NODES is told to use JOIN', () => {
  assert.throws(() => loadNodeConfig({ NODE_ID: '4', CLUSTER_NODES: CN, NODE_ADDR: 'd:4' }, '/w'), /give JOIN=/);
  // With JOIN, CLUSTER_NODES may stay in a shared environment (it is ignored when joining).
  assert.deepEqual(loadNodeConfig({ NODE_ID: '4', CLUSTER_NODES: CN, NODE_ADDR: 'd:4', JOIN: 'a:8081' }, '/w').join, ['http://a:8081']);
});

test('neither CLUSTER_NODES nor JOIN: valid (a node resuming from its data directory)', () => {
  const config = loadNodeConfig({ NODE_ID: '3', NODE_ADDR: 'c:3' }, '/w');
  assert.equal(config.clusterNodes.size, 0);
  assert.equal(config.join, null);
});

test('--force-new-cluster and --restore FILE are flags; modes do not combine', () => {
  const forced = loadNodeConfig({ NODE_ID: '1', NODE_ADDR: 'a:1', ...parseFlags(['--force-new-cluster']) }, '/w');
  assert.equal(forced.forceNewCluster, true);
  const restored = loadNodeConfig({ NODE_ID: '1', NODE_ADDR: 'a:1', ...parseFlags(['--restore', 'backups/x.backup']) }, '/w');
  assert.equal(restored.restoreFile, '/w/backups/x.backup');
  assert.throws(() => loadNodeConfig({ NODE_ID: '1', NODE_ADDR: 'a:1', ...parseFlags(['--restore']) }, '/w'), /needs a backup file/);
  assert.throws(() => loadNodeConfig({ NODE_ID: '1', NODE_ADDR: 'a:1', JOIN: 'b:2', ...parseFlags(['--force-new-cluster']) }, '/w'), /cannot be combined/);
  assert.throws(() => loadNodeConfig({ NODE_ID: '1', NODE_ADDR: 'a:1', ...parseFlags(['--force-new-cluster', '--restore', 'f']) }, '/w'), /cannot be combined/);
});

test('AUTO_PROMOTE and PROMOTE_MAX_LAG_ENTRIES', () => {
  const config = loadNodeConfig({ NODE_ID: '1', CLUSTER_NODES: CN, AUTO_PROMOTE: 'false', PROMOTE_MAX_LAG_ENTRIES: '50' }, '/w');
  assert.equal(config.autoPromote, false);
  assert.equal(config.promoteMaxLagEntries, 50);
  assert.throws(() => loadNodeConfig({ NODE_ID: '1', CLUSTER_NODES: CN, AUTO_PROMOTE: 'maybe' }, '/w'), /AUTO_PROMOTE/);
  assert.throws(() => loadNodeConfig({ NODE_ID: '1', CLUSTER_NODES: CN, PROMOTE_MAX_LAG_ENTRIES: '-1' }, '/w'), /PROMOTE_MAX_LAG_ENTRIES/);
});

test('the gateway takes CLUSTER_ID for a cluster whose id CLUSTER_NODES cannot give', () => {
  const computed = loadGatewayConfig({ CLUSTER_NODES: CN });
  assert.match(computed.clusterId, /^[0-9a-f]{16}$/);
  assert.equal(loadGatewayConfig({ CLUSTER_NODES: 'd:4', CLUSTER_ID: '0123456789abcdef' }).clusterId, '0123456789abcdef');
  assert.throws(() => loadGatewayConfig({ CLUSTER_NODES: CN, CLUSTER_ID: 'xyz' }), /CLUSTER_ID/);
});
