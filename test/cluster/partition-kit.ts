// One partition round, shared by the 3-node and 5-node partition scenarios: cut the leader's side
// off, see the majority elect and serve, see the cut-off side acknowledge nothing, heal, and
// measure how soon every API serves writes again.

import assert from 'node:assert/strict';
import { waitFor } from './harness.js';
import { assertNothingAcknowledgedBy, measureRecovery, probeDirectly, type ScenarioContext } from './fault-kit.js';
import { now } from './http-probe.js';

export type PartitionKind =
  | 'leader-isolated'
  | 'leader-cannot-send'
  | 'leader-cannot-receive'
  /** Five nodes: the leader and one follower on one side, three on the other. */
  | 'leader-in-minority-of-two';

export async function partitionRound(s: ScenarioContext, kind: PartitionKind): Promise<void> {
  const { cluster, history, workload } = s;
  const leader = await cluster.waitForLeader();
  const oldTerm = (await cluster.health(leader))?.term ?? 0;
  const followers = cluster.ids.filter((id) => id !== leader);
  let minority: number[] = [leader];
  switch (kind) {
    case 'leader-isolated': await cluster.lab.isolate(leader); break;
    case 'leader-cannot-send': await cluster.lab.cutOneWay(leader, followers); break;
    case 'leader-cannot-receive': for (const id of followers) await cluster.lab.cutOneWay(id, [leader]); break;
    case 'leader-in-minority-of-two': {
      minority = [leader, followers[0]];
      await cluster.lab.partition([minority, followers.slice(1)]);
      break;
    }
  }
  const cutAt = s.mark(`${kind}: cut (${cluster.lab.describeCuts()})`);
  // The old leader gives up leadership on its own (check-quorum): it hears no majority.
  const stepDown = waitFor(`node ${leader} to stop claiming leadership`, async () => {
    const health = await cluster.health(leader);
    return health !== undefined && health.state !== 'leader' ? now() : undefined;
  }, 20_000, 20);
  const majority = cluster.ids.filter((id) => !minority.includes(id));
  const newLeader = await cluster.waitForLeader(20_000, majority);
  const electedMs = now() - cutAt;
  await history.waitForAckedWrites(40, now(), 30_000, 'the majority to acknowledge writes');
  const steppedDown = await stepDown;
  // Direct writes and linearizable reads at the cut-off side: none may be acknowledged.
  const probes = await Promise.all(minority.map((id) => probeDirectly(history, cluster.node(id).api, workload.hotKeys.slice(0, 2))));
  const healAt = s.mark(`${kind}: heal`);
  await cluster.lab.heal();
  const sentToMinority = assertNothingAcknowledgedBy(history, minority.map((id) => `node${id}`), cutAt, healAt);
  s.notes.push(`${kind}: node${newLeader} led ${Math.round(electedMs)}ms after the cut, old leader node${leader} (term ${oldTerm}) stepped down after ${Math.round(steppedDown - cutAt)}ms, ${sentToMinority} ops answered by the cut-off side and none acknowledged (direct probes: ${probes.join(' ')})`);
  s.recoveries.push(await measureRecovery(cluster, history, `heal of ${kind}`, healAt));
  // After the heal every node follows one leader in one term.
  const finalLeader = await cluster.waitForLeader(20_000);
  assert.ok(cluster.ids.includes(finalLeader));
  await history.waitForAckedWrites(40, now(), 30_000);
}
