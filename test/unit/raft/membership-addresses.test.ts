// The membership change that records a member's advertised addresses ('updateAddresses'): founding
// members are recorded without an HTTP address (no founder can know another's), so the leader fills
// them in through the log, one change at a time like any other.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyMembershipChange } from '../../../src/raft/membership.js';
import { TestCluster, members } from './harness.js';

test('updateAddresses replaces one member\'s addresses and keeps its role', () => {
  const before = members([1, 2], [3]);
  const after = applyMembershipChange(before, { kind: 'updateAddresses', id: 3, peerAddr: 'c:1', httpAddr: 'c:2' });
  assert.notEqual(typeof after, 'string');
  const third = (after as typeof before).members.find((m) => m.id === 3);
  assert.deepEqual(third, { id: 3, role: 'learner', peerAddr: 'c:1', httpAddr: 'c:2' });
  assert.deepEqual((after as typeof before).members.filter((m) => m.id !== 3), before.members.filter((m) => m.id !== 3), 'the others are untouched');
});

test('updateAddresses of a non-member, or to the same addresses, is refused with a reason', () => {
  const current = members([1, 2, 3]);
  assert.equal(applyMembershipChange(current, { kind: 'updateAddresses', id: 9, peerAddr: 'x:1', httpAddr: 'x:2' }), 'node 9 is not a member');
  const same = current.members[0];
  assert.equal(applyMembershipChange(current, { kind: 'updateAddresses', id: 1, peerAddr: same.peerAddr, httpAddr: same.httpAddr }), 'node 1 already has these addresses');
});

test('an address update is a config entry: one at a time, replicated, and visible on followers', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  const leader = cluster.node(1);
  assert.equal(leader.membershipChangePending, false);
  const result = leader.proposeMembershipChange({ kind: 'updateAddresses', id: 2, peerAddr: 'b:1', httpAddr: 'b:2' });
  assert.equal(result.ok, true);
  assert.equal(leader.membershipChangePending, true, 'appended, not yet committed');
  assert.equal(leader.membershipIndex, result.ok ? result.index : -1);
  assert.deepEqual(leader.proposeMembershipChange({ kind: 'updateAddresses', id: 3, peerAddr: 'c:1', httpAddr: 'c:2' }), { ok: false, reason: 'membershipChangePending' });
  cluster.deliverAll();
  assert.equal(leader.membershipChangePending, false);
  for (const id of [1, 2, 3]) {
    const member = cluster.node(id).membership.members.find((m) => m.id === 2);
    assert.deepEqual(member, { id: 2, role: 'voter', peerAddr: 'b:1', httpAddr: 'b:2' }, `node ${id} sees the new addresses`);
  }
  assert.equal(cluster.node(2).membershipChangePending, false, 'only a leader has changes pending');
});
