// The membership API and kvctl against real processes: the members list and its shape, manual
// promotion when AUTO_PROMOTE is off, one change at a time (409 CONFLICT), the live-quorum check
// and its override, leadership transfer to a chosen node or the most up-to-date one, and followers
// forwarding every member operation to the leader.

import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from '../harness.js';
import { DynamicCluster, distRoot, learners, voters, type MembersAnswer } from './cluster.js';

let cluster: DynamicCluster;

before(async () => {
  cluster = await DynamicCluster.start({ founders: 3, env: { AUTO_PROMOTE: 'false' } });
  await cluster.waitForMembers('three voters with HTTP addresses', (v) => voters(v).length === 3 && v.members.every((m) => m.httpAddr !== ''), 30_000);
});

after(async () => {
  await cluster?.stop();
});

/** On failure, the nodes' logs are written to a file named in the test output. */
function withLogs(name: string, body: (t: TestContext) => Promise<void>): (t: TestContext) => Promise<void> {
  return async (t) => {
    try {
      await body(t);
    } catch (error) {
      t.diagnostic(`logs: ${cluster.dumpLogs(name)}`);
      throw error;
    }
  };
}

function kvctl(port: number, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(distRoot, 'src/cmd/kvctl.js'), '--endpoints', `127.0.0.1:${port}`, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number((error as { code?: unknown }).code ?? 1), stdout, stderr });
    });
  });
}

test('GET /cluster/members: id, peerAddr, httpAddr, role; matchIndex and caughtUp in the leader\'s view, from any node', { timeout: 180_000 }, async () => {
  for (const id of [1, 2, 3]) {
    const answer = await cluster.request(id, 'GET', '/cluster/members');
    assert.equal(answer.status, 200);
    const view = answer.body as MembersAnswer;
    assert.match(view.clusterId, /^[0-9a-f]{16}$/);
    assert.equal(view.view, 'leader', 'a follower answers with the leader\'s view');
    assert.equal(view.members.length, 3);
    for (const member of view.members) {
      assert.deepEqual(Object.keys(member).sort(), ['caughtUp', 'httpAddr', 'id', 'live', 'matchIndex', 'peerAddr', 'role']);
      assert.equal(member.role, 'voter');
      assert.equal(member.httpAddr, `127.0.0.1:${cluster.machine(member.id).httpPort}`, 'founding members\' HTTP addresses are recorded in the log');
      assert.equal(member.peerAddr, `127.0.0.1:${cluster.machine(member.id).peerPort}`);
    }
  }
  const listed = await kvctl(cluster.machine(2).httpPort, 'member', 'list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /the leader's view/);
  assert.match(listed.stdout, /ID\s+ROLE\s+PEER\s+HTTP\s+MATCH\s+CAUGHT-UP\s+LIVE/);
});

test('with AUTO_PROMOTE=false a joined node stays a learner until POST /cluster/members/{id}/promote', { timeout: 180_000 }, async () => {
  await cluster.join(4, 2);
  await cluster.waitForMembers('node 4 a caught-up learner', (v) => learners(v).includes(4) && v.members.every((m) => m.caughtUp === true), 30_000);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.deepEqual(learners(await cluster.members()), [4], 'not promoted automatically');
  const promoted = await kvctl(cluster.machine(3).httpPort, 'member', 'promote', '4');
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.equal(JSON.parse(promoted.stdout).change, 'promoted');
  assert.deepEqual(voters(await cluster.members()), [1, 2, 3, 4]);
  // It kept the cluster id and the membership: a restart needs no JOIN.
  await cluster.signal(4, 'SIGTERM');
  const before = cluster.logsOf(4).length;
  cluster.start(4, [], { JOIN: '' });
  await waitFor('node 4 healthy again', async () => ((await cluster.health(4))?.status === 'healthy' ? true : undefined), 30_000);
  const secondRun = cluster.logsOf(4).slice(before);
  assert.match(secondRun, /"mode":"resumed"/);
  assert.doesNotMatch(secondRun, /JOIN:/);
});

test('one change at a time: a second change while one is in flight gets 409 CONFLICT', { timeout: 180_000 }, async () => {
  // Two learners that never start (harmless: learners count toward nothing), asked for together.
  let sawConflict = false;
  for (let attempt = 0; attempt < 10 && !sawConflict; attempt++) {
    const a = 100 + 2 * attempt;
    const b = a + 1;
    const answers = await Promise.all([a, b].map((id) => cluster.request(1, 'POST', '/cluster/members', { id, peerAddr: `127.0.0.1:${1000 + id}`, httpAddr: `127.0.0.1:${2000 + id}` })));
    for (const answer of answers) {
      assert.ok(answer.status === 200 || answer.status === 409, JSON.stringify(answer.body));
      if (answer.status === 409) {
        assert.equal((answer.body as { code: string }).code, 'CONFLICT');
        sawConflict = true;
      }
    }
    for (const id of [a, b]) await waitFor(`learner ${id} removed`, async () => ((await cluster.request(2, 'DELETE', `/cluster/members/${id}`)).status !== 409 ? true : undefined), 10_000);
  }
  assert.ok(sawConflict, 'two concurrent changes: one was refused with 409');
  const view = await cluster.members();
  assert.deepEqual(view.members.map((m) => m.id).sort(), [1, 2, 3, 4], 'the refused and the added-then-removed learners are gone');
});

test('a change that would leave no live quorum is refused (QUORUM_AT_RISK) unless forced; a lagging learner is not promoted', { timeout: 180_000 }, withLogs('api-quorum', async () => {
  // Voters 1, 2, 3, 4, all live. One dies and is removed (fine: three live voters remain).
  const leader = await cluster.leader();
  const [firstDead, secondDead, survivor] = [1, 2, 3, 4].filter((id) => id !== leader);
  await cluster.signal(firstDead, 'SIGKILL');
  await cluster.waitForMembers(`node ${firstDead} not live`, (v) => v.members.some((m) => m.id === firstDead && m.live === false), 20_000);
  const removedDead = await cluster.request(survivor, 'DELETE', `/cluster/members/${firstDead}`);
  assert.equal(removedDead.status, 200, JSON.stringify(removedDead.body));

  // A learner that never started is far behind: not promoted, unless forced (safe here: three of
  // four voters stay live).
  const added = await cluster.request(leader, 'POST', '/cluster/members', { id: 50, peerAddr: '127.0.0.1:1050', httpAddr: '127.0.0.1:2050' });
  assert.equal(added.status, 200, JSON.stringify(added.body));
  const behind = await cluster.request(leader, 'POST', '/cluster/members/50/promote');
  assert.equal(behind.status, 409);
  assert.equal((behind.body as { code: string }).code, 'LEARNER_BEHIND');
  const forcedPromotion = await kvctl(cluster.machine(survivor).httpPort, 'member', 'promote', '50', '--force');
  assert.equal(forcedPromotion.code, 0, forcedPromotion.stderr);
  assert.deepEqual(voters(await cluster.members()), [leader, secondDead, survivor, 50].sort((a, b) => a - b));
  assert.equal((await cluster.request(survivor, 'PUT', '/kv/with-a-dead-voter', { value: 'ok' })).status, 200, 'three of four voters commit');
  assert.equal((await cluster.request(leader, 'DELETE', '/cluster/members/50')).status, 200);

  // Three voters, one dead: removing a live one would leave one live voter of two.
  await cluster.signal(secondDead, 'SIGKILL');
  await cluster.waitForMembers(`node ${secondDead} not live`, (v) => v.members.some((m) => m.id === secondDead && m.live === false), 20_000);
  const refused = await cluster.request(leader, 'DELETE', `/cluster/members/${survivor}`);
  assert.equal(refused.status, 409, JSON.stringify(refused.body));
  assert.equal((refused.body as { code: string }).code, 'QUORUM_AT_RISK');
  const viaKvctl = await kvctl(cluster.machine(survivor).httpPort, 'member', 'remove', String(survivor));
  assert.equal(viaKvctl.code, 3);
  assert.match(viaKvctl.stderr, /QUORUM_AT_RISK/);

  // Forcing it proposes it anyway: the two voters left need both, so the leader loses its quorum
  // at once (check-quorum) and the answer may be 504. Once the dead voter is back, an election
  // decides: the change commits, or (if a node without it wins) it is overwritten. Either way the
  // cluster serves again with every remaining voter live.
  const forced = cluster.request(leader, 'DELETE', `/cluster/members/${survivor}?force=true`, undefined, 30_000);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  cluster.start(secondDead);
  const answer = await forced;
  assert.ok(answer.status === 200 || answer.status === 504, JSON.stringify(answer.body));
  const view = await cluster.waitForMembers('every voter live again', (v) => v.members.every((m) => m.live === true), 30_000);
  assert.ok(voters(view).includes(leader) && voters(view).includes(secondDead), JSON.stringify(view));
  assert.equal((await cluster.request(secondDead, 'PUT', '/kv/after-forced-removal', { value: 'ok' })).status, 200);
  if (!voters(view).includes(survivor)) assert.equal(await cluster.exited(survivor, 15_000), 0, 'the removed node exits');
  assert.match(cluster.logsOf(leader), /membership change forced despite the live-quorum check/);
}));

test('POST /cluster/leader: to a chosen voter, or with no body to the most up-to-date one; kvctl leader transfer', { timeout: 180_000 }, async () => {
  const view = await cluster.members();
  const [a, b] = voters(view);
  const leader = view.leader;
  const target = leader === a ? b : a;
  const other = target === a ? b : a;
  const toChosen = await cluster.request(other, 'POST', '/cluster/leader', { id: target });
  assert.equal(toChosen.status, 200, JSON.stringify(toChosen.body));
  assert.equal((toChosen.body as { leader: number }).leader, target);
  assert.equal(await cluster.leader(), target);
  const toAny = await kvctl(cluster.machine(target).httpPort, 'leader', 'transfer');
  assert.equal(toAny.code, 0, toAny.stderr);
  assert.equal(JSON.parse(toAny.stdout).leader, other);
  assert.equal(await cluster.leader(), other);
  const learnerTarget = await cluster.request(other, 'POST', '/cluster/leader', { id: 999 });
  assert.equal(learnerTarget.status, 404);
  const bad = await cluster.request(other, 'POST', '/cluster/leader', '{"id": "x"}');
  assert.equal(bad.status, 400);
});
