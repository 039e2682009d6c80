// Real processes under continuous load with the linearizability checker on: replace a dead node with
// a new one (remove it, then JOIN a new machine), and run deploy/rolling-restart.sh over the whole
// cluster (transfer leadership away, stop, start, wait for catch-up, one node at a time).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { DynamicCluster, repoRoot, voters } from './cluster.js';
import { formatReport, Workload } from './workload.js';

const clusters: DynamicCluster[] = [];
const workloads: Workload[] = [];

after(async () => {
  for (const workload of workloads) workload.close();
  for (const cluster of clusters) await cluster.stop();
});

test('replace a dead node with a new one under load', { timeout: 180_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 3 });
  clusters.push(cluster);
  try {
    await cluster.waitForMembers('three voters', (v) => voters(v).length === 3 && v.members.every((m) => m.httpAddr !== ''), 30_000);
    const leader = await cluster.leader();
    const dead = [1, 2, 3].find((id) => id !== leader) as number;
    const live = [1, 2, 3].find((id) => id !== dead) as number;
    // The new machine is told two members' addresses; the first one may be the dead node.
    await cluster.allocate(4, null);
    const workload = new Workload({ ports: cluster.httpPorts(), clients: 4 });
    workloads.push(workload);
    workload.start();
    workload.phase('steady');
    await sleep(1500);

    workload.phase('node dies');
    await cluster.signal(dead, 'SIGKILL');
    await cluster.waitForMembers(`node ${dead} seen as not live`, (v) => v.members.some((m) => m.id === dead && m.live === false), 20_000);

    workload.phase('replace: remove the dead node, add a new one');
    const startedMs = Date.now();
    const removed = await cluster.request(live, 'DELETE', `/cluster/members/${dead}`);
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    cluster.start(4, [], { JOIN: `127.0.0.1:${cluster.machine(dead).httpPort},127.0.0.1:${cluster.machine(live).httpPort}` });
    const view = await cluster.waitForMembers('the new node promoted', (v) => voters(v).includes(4) && voters(v).length === 3 && v.members.every((m) => m.caughtUp === true), 60_000);
    t.diagnostic(`replacing dead node ${dead} with node 4 took ${Date.now() - startedMs} ms`);
    assert.deepEqual(voters(view), [1, 2, 3, 4].filter((id) => id !== dead));

    workload.phase('steady after the replacement');
    await sleep(1500);
    await workload.stop();
    await workload.finalReads(voters(view).map((id) => cluster.machine(id).httpPort));
    t.diagnostic(`replace under load (${workload.history.length} operations, ${workload.acknowledgedWrites()} acknowledged writes):`);
    for (const line of formatReport(workload.report())) t.diagnostic(line);
    const verdict = workload.check();
    assert.equal(verdict.verdict, 'linearizable', JSON.stringify(verdict).slice(0, 4000));
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('replace')}`);
    throw error;
  }
});

test('deploy/rolling-restart.sh restarts every node of a live cluster, without losing a write', { timeout: 180_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 3 });
  clusters.push(cluster);
  // The script's stop and start commands call this control server, which signals our children.
  const control = await controlServer(cluster);
  try {
    await cluster.waitForMembers('three voters', (v) => voters(v).length === 3 && v.members.every((m) => m.httpAddr !== ''), 30_000);
    const workload = new Workload({ ports: cluster.httpPorts(), clients: 4 });
    workloads.push(workload);
    workload.start();
    workload.phase('steady');
    await sleep(1000);
    workload.phase('rolling restart');
    const leaderBefore = await cluster.leader();
    const call = (what: string): string => `node -e "fetch('http://127.0.0.1:${control.port}/${what}/{id}',{method:'POST'}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"`;
    const script = join(repoRoot, 'deploy/rolling-restart.sh');
    const startedMs = Date.now();
    const result = await runScript(script, ['--endpoints', cluster.httpPorts().map((p) => `127.0.0.1:${p}`).join(','), '--stop-cmd', call('stop'), '--start-cmd', call('start'), '--settle-ms', '300', '--timeout-ms', '60000']);
    t.diagnostic(`rolling restart of 3 nodes took ${Date.now() - startedMs} ms`);
    assert.equal(result.code, 0, result.output);
    const lines = result.output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; id?: number; order?: number[] });
    const order = lines.find((line) => line.msg === 'rolling restart')?.order ?? [];
    assert.deepEqual([...order].sort(), [1, 2, 3], 'every node');
    assert.equal(order[order.length - 1], leaderBefore, 'the leader is restarted last');
    assert.ok(lines.some((line) => line.msg === 'leadership transferred away'), 'leadership was transferred away before the leader stopped');
    assert.equal(lines.filter((line) => line.msg === 'node restarted and caught up').length, 3);
    assert.deepEqual(control.calls, order.flatMap((id) => [`stop ${id}`, `start ${id}`]));

    workload.phase('steady after the restart');
    await sleep(1000);
    await workload.stop();
    await workload.finalReads(cluster.httpPorts());
    t.diagnostic(`rolling restart under load (${workload.history.length} operations, ${workload.acknowledgedWrites()} acknowledged writes):`);
    for (const line of formatReport(workload.report())) t.diagnostic(line);
    const verdict = workload.check();
    assert.equal(verdict.verdict, 'linearizable', JSON.stringify(verdict).slice(0, 4000));
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('rolling-restart')}`);
    throw error;
  } finally {
    control.server.close();
  }
});

async function controlServer(cluster: DynamicCluster): Promise<{ server: Server; port: number; calls: string[] }> {
  const calls: string[] = [];
  const server = createServer((req, res) => {
    const match = /^\/(stop|start)\/(\d+)$/.exec(req.url ?? '');
    if (match === null || req.method !== 'POST') {
      res.writeHead(404).end();
      return;
    }
    const id = Number(match[2]);
    calls.push(`${match[1]} ${id}`);
    const action = match[1] === 'stop' ? cluster.signal(id, 'SIGTERM') : Promise.resolve(cluster.start(id));
    action.then(() => res.writeHead(200).end('ok'), (error: Error) => res.writeHead(500).end(error.message));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, calls };
}

function runScript(script: string, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    child.on('exit', (code) => resolve({ code, output }));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
