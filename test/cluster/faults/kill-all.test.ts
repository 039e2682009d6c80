// Scenario 3: SIGKILL of all three nodes under load, then a restart: every acknowledged write is
// still there (the write-ahead log's fsync before acknowledging is what is being tested).

import { test } from 'node:test';
import { faultTestOptions, measureRecovery, scenario } from '../fault-kit.js';
import { now } from '../http-probe.js';

test('SIGKILL of every node under load, then a restart: every acknowledged write survives', faultTestOptions(), (t) => scenario(t, { name: 'kill-all' }, async (s) => {
  const { cluster, history } = s;
  for (let round = 1; round <= 3; round++) {
    await history.waitForAckedWrites(80, now(), 30_000);
    const leader = await cluster.waitForLeader();
    // Round 1 kills the leader last, round 2 first, round 3 all at once.
    const order = cluster.ids.filter((id) => id !== leader);
    if (round === 1) order.push(leader); else order.unshift(leader);
    s.mark(`SIGKILL all (round ${round}, order ${order.join(',')})`);
    if (round === 3) await Promise.all(order.map((id) => cluster.kill(id)));
    else for (const id of order) await cluster.kill(id);
    // The clients keep trying while nothing runs; some of their requests were in flight.
    await history.waitForOperations(10, now(), 5000);
    const restartedAt = s.mark(`restart all (round ${round})`);
    for (const id of cluster.ids) cluster.startNode(id);
    s.recoveries.push(await measureRecovery(cluster, history, `restart of all nodes (round ${round})`, restartedAt));
  }
  await history.waitForAckedWrites(50, now(), 30_000);
}));
