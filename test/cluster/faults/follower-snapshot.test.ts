// Scenario 2: a follower is killed, the others write past a snapshot point and compact their logs
// (SNAPSHOT_EVERY_ENTRIES=200, SNAPSHOT_KEEP_TAIL_ENTRIES=50), and the follower restarts: the
// entries it misses are gone from the leader's log, so it must catch up by snapshot, and end with
// exactly the others' state.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../harness.js';
import { faultTestOptions, measureRecovery, scenario } from '../fault-kit.js';
import { now } from '../http-probe.js';

const KEEP_TAIL = 50;

test('a killed follower catches up by snapshot after the log was compacted past it', faultTestOptions(), (t) => scenario(t, {
  name: 'follower-snapshot',
  cluster: { env: { SNAPSHOT_EVERY_ENTRIES: '200', SNAPSHOT_KEEP_TAIL_ENTRIES: String(KEEP_TAIL) } },
  workload: { uniqueShare: 0.4, readShare: 0.2 },
}, async (s) => {
  const { cluster, history } = s;
  const leader = await cluster.waitForLeader();
  const follower = cluster.ids.find((id) => id !== leader) as number;
  await cluster.verifyPid(follower);
  s.mark(`SIGKILL follower ${follower}`);
  await cluster.kill(follower);
  const atKill = await waitFor('the leader to report the killed follower', async () => (await cluster.status(leader))?.followers?.find((f) => f.id === follower), 10_000);
  const matchAtKill = atKill.matchIndex;
  // The leader keeps entries from (snapshot point - KEEP_TAIL): once that is past the follower's
  // match index (with a margin of a whole snapshot interval), only a snapshot can catch it up.
  const compacted = await waitFor('the leader to compact its log past the killed follower', async () => {
    const status = await cluster.status(leader);
    return status !== undefined && status.snapshotIndex - KEEP_TAIL > matchAtKill + 200 ? status : undefined;
  }, 90_000, 200);
  s.notes.push(`follower-match-at-kill=${matchAtKill} leader-snapshot=${compacted.snapshotIndex} leader-last=${compacted.lastIndex}`);
  const restartedAt = s.mark(`restart follower ${follower}`);
  cluster.startNode(follower);
  await waitFor(`node ${follower} to log "snapshot installed"`, async () => (cluster.logHas(follower, 'snapshot installed', 2) ? true : undefined), 30_000, 50);
  const installedMs = now() - restartedAt;
  const installed = cluster.logLines(follower, 'snapshot installed').at(-1) ?? {};
  s.notes.push(`snapshot-installed-after=${Math.round(installedMs)}ms at-index=${String(installed.index)}`);
  assert.ok(Number(installed.index) > matchAtKill, `the installed snapshot (index ${String(installed.index)}) is past what the follower had (${matchAtKill})`);
  s.recoveries.push(await measureRecovery(cluster, history, `restart of follower ${follower}`, restartedAt));
  // The follower keeps up afterwards: its applied index reaches the leader's commit index.
  const target = (await cluster.status(leader))?.commitIndex ?? 0;
  await waitFor(`node ${follower} to apply up to ${target}`, async () => ((await cluster.status(follower))?.appliedIndex ?? 0) >= target ? true : undefined, 30_000, 100);
  await history.waitForAckedWrites(50, now(), 30_000);
}));
