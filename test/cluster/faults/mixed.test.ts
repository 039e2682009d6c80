// Scenario 7: random kills, pauses and partitions (alone and combined, sometimes leaving no quorum)
// under load, with the checker on, for a bounded time. The schedule comes from a seed, printed, so a
// failing schedule can be replayed: FAULT_SEED=<seed>. MIXED_DURATION_MS sets the length (default
// 150 s, which keeps the whole fault suite under 12 minutes on two cores); the test stops by itself.

import { test } from 'node:test';
import { faultTestOptions, measureRecovery, scenario, type ScenarioContext } from '../fault-kit.js';
import { now } from '../http-probe.js';
import { seededRandom } from '../workload.js';

const DURATION_MS = Number(process.env.MIXED_DURATION_MS ?? 150_000);
const SEED = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));

type Fault = (s: ScenarioContext, pick: <T>(items: readonly T[]) => T) => Promise<string>;

const FAULTS: Record<string, Fault> = {
  'kill-leader': async (s) => { const id = await s.cluster.waitForLeader(); await s.cluster.kill(id); return `SIGKILL leader ${id}`; },
  'kill-random': async (s, pick) => { const id = pick(s.cluster.ids); await s.cluster.kill(id); return `SIGKILL node ${id}`; },
  'pause-leader': async (s) => { const id = await s.cluster.waitForLeader(); s.cluster.pause(id); return `SIGSTOP leader ${id}`; },
  'pause-random': async (s, pick) => { const id = pick(s.cluster.ids); s.cluster.pause(id); return `SIGSTOP node ${id}`; },
  'isolate-leader': async (s) => { const id = await s.cluster.waitForLeader(); await s.cluster.lab.isolate(id); return `isolate leader ${id}`; },
  'isolate-random': async (s, pick) => { const id = pick(s.cluster.ids); await s.cluster.lab.isolate(id); return `isolate node ${id}`; },
  'leader-cannot-send': async (s) => {
    const id = await s.cluster.waitForLeader();
    await s.cluster.lab.cutOneWay(id, s.cluster.ids.filter((o) => o !== id));
    return `leader ${id} cannot send`;
  },
  'leader-cannot-receive': async (s) => {
    const id = await s.cluster.waitForLeader();
    for (const other of s.cluster.ids.filter((o) => o !== id)) await s.cluster.lab.cutOneWay(other, [id]);
    return `leader ${id} cannot receive`;
  },
  // Two faults at once: no quorum until the heal.
  'kill-one-pause-another': async (s, pick) => {
    const a = pick(s.cluster.ids);
    const b = pick(s.cluster.ids.filter((o) => o !== a));
    await s.cluster.kill(a);
    s.cluster.pause(b);
    return `SIGKILL node ${a} + SIGSTOP node ${b}`;
  },
  'isolate-leader-kill-follower': async (s) => {
    const id = await s.cluster.waitForLeader();
    await s.cluster.lab.isolate(id);
    const other = s.cluster.ids.find((o) => o !== id) as number;
    await s.cluster.kill(other);
    return `isolate leader ${id} + SIGKILL node ${other}`;
  },
  'kill-all': async (s) => { await Promise.all(s.cluster.ids.map((id) => s.cluster.kill(id))); return 'SIGKILL all'; },
};

/** Undo everything: heal the network, resume the paused, restart the dead. */
async function healAll(s: ScenarioContext): Promise<string> {
  const done: string[] = [];
  await s.cluster.lab.heal();
  for (const id of s.cluster.ids) {
    const state = s.cluster.node(id).state;
    if (state === 'paused') { s.cluster.resume(id); done.push(`SIGCONT ${id}`); }
    if (state === 'dead') { s.cluster.startNode(id); done.push(`restart ${id}`); }
  }
  return ['heal', ...done].join(' + ');
}

test('random kills, pauses and partitions under load: linearizable, nothing acknowledged lost, recovers after each heal', faultTestOptions({ timeout: DURATION_MS + 240_000 }), (t) => scenario(t, { name: 'mixed' }, async (s) => {
  const random = seededRandom(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const names = Object.keys(FAULTS);
  console.log(`# mixed: seed ${SEED} (replay with FAULT_SEED=${SEED}), ${DURATION_MS} ms`);
  const end = now() + DURATION_MS;
  const applied = new Map<string, number>();
  let round = 0;
  while (now() < end) {
    round++;
    const name = pick(names);
    applied.set(name, (applied.get(name) ?? 0) + 1);
    const what = await FAULTS[name](s, pick);
    s.mark(`#${round} ${what}`);
    // The fault lasts for a random number of client operations, or at most a few seconds.
    await s.history.waitForOperations(20 + Math.floor(random() * 150), now(), 1000 + random() * 5000);
    const undone = await healAll(s);
    const healedAt = s.mark(`#${round} ${undone}`);
    s.recoveries.push(await measureRecovery(s.cluster, s.history, `#${round} ${name}`, healedAt));
    await s.history.waitForAckedWrites(20, now(), 30_000, `writes after the heal of round ${round}`);
  }
  s.notes.push(`seed=${SEED} rounds=${round} faults={${[...applied.entries()].map(([n, c]) => `${n}:${c}`).join(' ')}}`);
}));
