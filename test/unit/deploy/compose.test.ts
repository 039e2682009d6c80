// No Docker engine runs on our machines, so the Compose path is checked as far as it can be: the file
// is valid for docker-compose, and every service's exact environment passes the process's own
// configuration check (`--check-config`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const repoRoot = resolve(distRoot, '..');
const composeFile = join(repoRoot, 'docker-compose.yml');

interface ComposeService {
  readonly environment?: Record<string, string>;
  readonly command?: string[];
}

function hasDockerCompose(): boolean {
  return spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
}

test('docker-compose.yml is valid for docker-compose', (t) => {
  if (!hasDockerCompose()) {
    if (process.env.CI === 'true') assert.fail('docker-compose is missing: .ci/run installs Debian\'s docker-compose package');
    t.skip('docker-compose is not installed (Debian package docker-compose); .ci/run installs it');
    return;
  }
  execFileSync('docker-compose', ['-f', composeFile, 'config', '-q'], { stdio: 'pipe' });
});

test('every service\'s environment passes --check-config of the process it runs', () => {
  const compose = parse(readFileSync(composeFile, 'utf8')) as { services: Record<string, ComposeService> };
  const services = Object.entries(compose.services);
  assert.ok(services.length >= 4, 'three nodes and the gateway');
  let nodes = 0;
  for (const [name, service] of services) {
    const script = service.command?.some((part) => part.includes('kv-gateway')) ? 'kv-gateway.js' : 'raft-node.js';
    if (script === 'raft-node.js') nodes++;
    const result = spawnSync(process.execPath, [join(distRoot, 'src/cmd', script), '--check-config'], {
      env: { PATH: process.env.PATH ?? '', ...service.environment },
      encoding: 'utf8',
      cwd: '/',
    });
    assert.equal(result.status, 0, `${name}: ${result.stderr}${result.stdout}`);
    assert.match(result.stdout, /configuration is valid/, name);
  }
  assert.equal(nodes, 3);
});

test('--check-config names a wrong setting in one clear line and exits non-zero', () => {
  const result = spawnSync(process.execPath, [join(distRoot, 'src/cmd/raft-node.js'), '--check-config'], {
    env: { PATH: process.env.PATH ?? '', NODE_ID: '4', CLUSTER_NODES: 'a:1,b:2,c:3' },
    encoding: 'utf8',
    cwd: '/',
  });
  assert.equal(result.status, 2);
  assert.equal(result.stderr.trim().split('\n').length, 1);
  assert.match(result.stderr, /NODE_ID 4 is not in CLUSTER_NODES/);
});
