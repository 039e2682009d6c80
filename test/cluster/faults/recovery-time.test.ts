// Scenario 6: after every heal or restart the cluster serves writes again within about two seconds
// (ARCHITECTURE.md, "The event loop is the heartbeat"). Each kind of fault is applied under load
// and undone; the time until every API (each node's and the gateway's) has acknowledged a fresh
// write is measured and printed, and asserted against a generous bound (the real figure belongs in
// the benchmarks).

import { test } from 'node:test';
import { faultTestOptions, measureRecovery, scenario, type ScenarioContext } from '../fault-kit.js';
import { now } from '../http-probe.js';

async function hold(s: ScenarioContext): Promise<void> {
  // A fault lasts until the surviving cluster has acknowledged writes again (or a short deadline,
  // when the fault leaves no quorum).
  await s.history.waitForAckedWrites(30, now(), 8000).catch(() => undefined);
}

test('after every kind of heal or restart, every API serves writes again within the bound', faultTestOptions(), (t) => scenario(t, { name: 'recovery-time' }, async (s) => {
  const { cluster, history } = s;
  const follower = async (): Promise<number> => {
    const leader = await cluster.waitForLeader();
    return cluster.ids.find((id) => id !== leader) as number;
  };

  let id = await follower();
  await cluster.kill(id);
  s.mark(`SIGKILL follower ${id}`);
  await hold(s);
  let at = s.mark(`restart follower ${id}`);
  cluster.startNode(id);
  s.recoveries.push(await measureRecovery(cluster, history, 'follower restart', at));

  id = await cluster.waitForLeader();
  at = s.mark(`SIGKILL leader ${id}`);
  await cluster.kill(id);
  s.recoveries.push(await measureRecovery(cluster, history, 'leader SIGKILL (failover)', at, cluster.endpoints().filter((e) => e.name !== `node${id}`)));
  at = s.mark(`restart node ${id}`);
  cluster.startNode(id);
  s.recoveries.push(await measureRecovery(cluster, history, 'old leader restart', at));

  id = await follower();
  await cluster.lab.isolate(id);
  s.mark(`isolate follower ${id}`);
  await hold(s);
  at = s.mark('heal');
  await cluster.lab.heal();
  s.recoveries.push(await measureRecovery(cluster, history, 'heal of an isolated follower', at));

  id = await cluster.waitForLeader();
  await cluster.lab.isolate(id);
  s.mark(`isolate leader ${id}`);
  await cluster.waitForLeader(20_000, cluster.ids.filter((other) => other !== id));
  await hold(s);
  at = s.mark('heal');
  await cluster.lab.heal();
  s.recoveries.push(await measureRecovery(cluster, history, 'heal of an isolated leader', at));

  id = await follower();
  cluster.pause(id);
  s.mark(`SIGSTOP follower ${id}`);
  await hold(s);
  at = s.mark(`SIGCONT follower ${id}`);
  cluster.resume(id);
  s.recoveries.push(await measureRecovery(cluster, history, 'SIGCONT of a follower', at));

  id = await cluster.waitForLeader();
  cluster.pause(id);
  s.mark(`SIGSTOP leader ${id}`);
  await cluster.waitForLeader(20_000, cluster.ids.filter((other) => other !== id));
  await hold(s);
  at = s.mark(`SIGCONT node ${id}`);
  cluster.resume(id);
  s.recoveries.push(await measureRecovery(cluster, history, 'SIGCONT of the old leader', at));

  s.mark('SIGKILL all');
  await Promise.all(cluster.ids.map((node) => cluster.kill(node)));
  at = s.mark('restart all');
  for (const node of cluster.ids) cluster.startNode(node);
  s.recoveries.push(await measureRecovery(cluster, history, 'restart of the whole cluster', at));
  await history.waitForAckedWrites(30, now(), 30_000);
  console.log(`# recovery-time table (ms until every API acknowledged a write; target about 2000): ${s.recoveries.map((r) => `${r.label}=${Math.round(r.ms)}`).join(', ')}`);
}));
