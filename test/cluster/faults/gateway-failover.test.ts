// The gateway through faults (scenarios 1, 4 and 6 seen from the gateway): after the leader is
// killed or paused, or while some node is out of the gateway's reach, the gateway must serve writes
// again within the recovery bound. When it cannot reach the leader, it sends through a follower that
// knows the leader (followers forward).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { faultTestOptions, RECOVERY_BOUND_MS, requireNetns } from '../fault-kit.js';
import { now, type Endpoint } from '../http-probe.js';
import { probeNetns } from '../netns.js';
import { NsCluster } from '../ns-cluster.js';
import { History, check, write } from '../workload.js';

let cluster: NsCluster | undefined;
const history = new History();
let sequence = 0;
/** Every measured time until the gateway served again: the client-visible gaps. */
const gaps: { label: string; ms: number }[] = [];

after(async () => {
  await cluster?.stop();
});

async function shared(): Promise<NsCluster> {
  if (!probeNetns().ok) requireNetns();
  cluster ??= await NsCluster.start({ name: 'gateway-failover' });
  return cluster;
}

/** Stamped writes through the gateway, one after another, until one is acknowledged; ms after `since`. */
async function gatewayServesAgain(c: NsCluster, label: string, since: number, deadlineMs = 16_000): Promise<number> {
  const gateway = c.gateway as Endpoint;
  const outcomes: string[] = [];
  while (now() - since < deadlineMs) {
    const op = await write('put', `gateway-failover/${label}`, `${label}-${++sequence}`, {
      history, clientId: 1, endpoint: () => gateway, timeoutMs: 10_000, stamp: { clientId: `gateway-failover-${process.pid}`, seq: sequence }, maxAttempts: 1,
    });
    outcomes.push(history.details.get(op.id)?.attempts.at(-1)?.outcome.replace(/: .*/, '') ?? '?');
    if (op.status === 'ok') {
      const ms = (op.completeTime as number) - since;
      console.log(`# gateway after ${label}: first write acknowledged ${Math.round(ms)} ms later (answers before it: ${outcomes.slice(0, -1).join(', ') || 'none'})`);
      gaps.push({ label, ms });
      return ms;
    }
  }
  console.log(`# gateway after ${label}: no write acknowledged within ${deadlineMs} ms (answers: ${outcomes.join(', ')}); logs: ${c.dumpLogs('gateway-failover')}`);
  gaps.push({ label, ms: Infinity });
  return Infinity;
}

async function restore(c: NsCluster): Promise<void> {
  await c.lab.heal();
  for (const id of c.ids) {
    if (c.node(id).state === 'paused') c.resume(id);
    if (c.node(id).state === 'dead') c.startNode(id);
  }
  await c.waitForLeader(20_000);
  assert.ok(await gatewayServesAgain(c, 'restore', now()) < RECOVERY_BOUND_MS);
}

test('the gateway serves writes again soon after the leader is SIGKILLed', faultTestOptions(), async () => {
  const c = await shared();
  await gatewayServesAgain(c, 'warm-up', now());
  const leader = await c.waitForLeader();
  const at = now();
  await c.kill(leader);
  const ms = await gatewayServesAgain(c, `SIGKILL of leader ${leader}`, at);
  await restore(c);
  assert.ok(ms <= RECOVERY_BOUND_MS, `${Math.round(ms)} ms`);
});

test('the gateway serves writes again soon after the leader is SIGSTOPped', faultTestOptions(), async () => {
  const c = await shared();
  const leader = await c.waitForLeader();
  const at = now();
  c.pause(leader);
  const ms = await gatewayServesAgain(c, `SIGSTOP of leader ${leader}`, at);
  await restore(c);
  assert.ok(ms <= RECOVERY_BOUND_MS, `${Math.round(ms)} ms`);
});

test('the gateway serves writes when a follower it cannot reach is left and the leader changes', faultTestOptions(), async () => {
  const c = await shared();
  const leader = await c.waitForLeader();
  const follower = c.ids.find((id) => id !== leader) as number;
  await c.lab.cutFromHost(follower);
  const at = now();
  await c.kill(leader);
  const ms = await gatewayServesAgain(c, `SIGKILL of leader ${leader} while node ${follower} is unreachable from the gateway`, at);
  await restore(c);
  assert.ok(ms <= RECOVERY_BOUND_MS, `${Math.round(ms)} ms`);
});

/** Gateway log lines (JSON) with message `msg`, from line `from` on. */
function gatewayLog(c: NsCluster, msg: string, from = 0): Record<string, unknown>[] {
  return c.gatewayLines.slice(from).filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('the gateway serves writes while it cannot reach the leader (followers forward)', faultTestOptions(), async () => {
  const c = await shared();
  const leader = await c.waitForLeader();
  // After the faults above the gateway may still be sending through a follower; wait until it
  // reaches the leader itself (its /health says so), or the cut below would test nothing.
  const gateway = c.gateway as Endpoint;
  const direct = now();
  for (;;) {
    const health = await fetch(`http://${gateway.host}:${gateway.port}/health`).then((r) => r.json() as Promise<{ route?: string; leader?: number }>, () => ({}) as { route?: string; leader?: number });
    if (health.route === 'leader' && health.leader === leader) break;
    assert.ok(now() - direct < 20_000, `the gateway did not reach the leader directly within 20 s: ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const cutMark = c.gatewayLines.length;
  const at = now();
  await c.lab.cutFromHost(leader);
  const ms = await gatewayServesAgain(c, `the leader ${leader} became unreachable from the gateway`, at);
  const relayed = gatewayLog(c, 'the leader does not answer the gateway; sending through a follower that knows it', cutMark);
  await restore(c);
  assert.ok(ms <= RECOVERY_BOUND_MS, `${Math.round(ms)} ms`);
  assert.ok(relayed.some((line) => line.leader === leader), 'the gateway sent through a follower');
});

test('every gateway write above, acknowledged or not, forms a linearizable history', faultTestOptions(), async () => {
  await shared();
  const verdict = check(history);
  const { ops, ok, fail, unknown } = history.tally();
  const faults = gaps.filter((g) => g.label !== 'warm-up' && g.label !== 'restore');
  const gapText = faults.map((g) => `${g.label}: ${Number.isFinite(g.ms) ? `${Math.round(g.ms)}ms` : 'never'}`).join('; ');
  console.log(`# SUMMARY gateway-failover: ops=${ops} ok=${ok} failed=${fail} unknown=${unknown} longest-ack-gap=${faults.some((g) => !Number.isFinite(g.ms)) ? 'unbounded' : `${Math.round(Math.max(0, ...faults.map((g) => g.ms)))}ms`} [${gapText}] checker=${verdict.result.verdict === 'linearizable' ? verdict.text : verdict.result.verdict.toUpperCase()}`);
  assert.equal(verdict.result.verdict, 'linearizable', verdict.text);
});
