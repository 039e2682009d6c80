#!/usr/bin/env node
// `npm start`: a local cluster on loopback, as separate OS processes: NODES raft-node processes
// (default 3; peer ports 50051.., REST APIs 8081..) and one kv-gateway on 8080, data under ./data.
// Every child's output is shown with a prefix; the children stop when this process stops.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeCount = Number(process.env.NODES ?? 3);
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9) {
  process.stderr.write('local-cluster: NODES must be a whole number from 1 to 9\n');
  process.exit(2);
}
const host = '127.0.0.1';
const dataRoot = resolve(process.env.DATA_DIR ?? 'data');
const gatewayPort = Number(process.env.GATEWAY_PORT ?? 8080);
const clusterNodes = Array.from({ length: nodeCount }, (_, i) => `${host}:${50051 + i}`).join(',');
const children = new Map<string, ChildProcess>();
let stopping = false;

function launch(name: string, script: string, env: Record<string, string>): void {
  const child = spawn(process.execPath, [join(here, script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.set(name, child);
  const prefix = `[${name}]`.padEnd(10);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  }
  child.on('exit', (code, signal) => {
    children.delete(name);
    process.stdout.write(`${prefix}exited (${signal ?? `code ${code}`})\n`);
    // A node removed from the cluster (DELETE /cluster/members/{id}) exits cleanly: the rest go on.
    if (code === 0 && name !== 'gateway') return;
    if (!stopping) stopAll(1);
  });
}

function stopAll(exitCode: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill('SIGTERM');
  const forceTimer = setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
  }, 5000);
  const check = setInterval(() => {
    if (children.size === 0) {
      clearInterval(check);
      clearTimeout(forceTimer);
      process.exit(exitCode);
    }
  }, 50);
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolveHealth) => {
    const req = request({ host, port, path: '/health', timeout: 1000 }, (res) => {
      res.resume();
      resolveHealth(res.statusCode === 200);
    });
    req.on('error', () => resolveHealth(false));
    req.on('timeout', () => { req.destroy(); resolveHealth(false); });
    req.end();
  });
}

async function main(): Promise<void> {
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));
  process.on('exit', () => { for (const child of children.values()) child.kill('SIGKILL'); });
  mkdirSync(dataRoot, { recursive: true });
  for (let id = 1; id <= nodeCount; id++) {
    launch(`node${id}`, 'raft-node.js', {
      NODE_ID: String(id),
      NODE_ADDR: `${host}:${50050 + id}`,
      CLUSTER_NODES: clusterNodes,
      HTTP_ADDR: `${host}:${8080 + id}`,
      DATA_DIR: join(dataRoot, `node-${id}`),
    });
  }
  launch('gateway', 'kv-gateway.js', { GATEWAY_ADDR: `${host}:${gatewayPort}`, CLUSTER_NODES: clusterNodes });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !stopping) {
    if (await healthy(gatewayPort)) {
      process.stdout.write(`\nCluster of ${nodeCount} ready. Gateway: http://localhost:${gatewayPort}  Nodes: ${Array.from({ length: nodeCount }, (_, i) => `http://localhost:${8081 + i}`).join(' ')}\n`
        + `Try: curl http://localhost:${gatewayPort}/health   (Ctrl-C stops everything)\n\n`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!stopping) process.stdout.write('local-cluster: the cluster did not become healthy within 30 s; see the logs above\n');
}

void main();
