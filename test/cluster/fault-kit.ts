// What every fault scenario shares: the skip-or-fail decision when namespaces are unavailable,
// recovery-time probes, a watcher of who claims to lead, final checks (every acknowledged write is
// readable, the replicas agree, the history is linearizable) and the one summary line per scenario.

import assert from 'node:assert/strict';
import { after, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from './harness.js';
import { exchange, now, type Endpoint } from './http-probe.js';
import { probeNetns } from './netns.js';
import { NsCluster, type NodeStatus, type NsClusterOptions } from './ns-cluster.js';
import type { KvOperation } from '../lincheck/history.js';
import { History, Workload, check, read, write, type Verdict, type WorkloadOptions } from './workload.js';

/** Generous bound for "serves writes again"; the measured figure is printed (the target is ~2 s). */
export const RECOVERY_BOUND_MS = 10_000;

let bannerShown = false;

/**
 * Options for `test()`: skip with a loud message without root or namespaces, except under CI=true,
 * where the test runs and fails with the reason.
 */
export function faultTestOptions(extra: { timeout?: number; todo?: string } = {}): { skip?: string; timeout?: number; todo?: string } {
  const support = probeNetns();
  if (support.ok || process.env.CI === 'true') return { timeout: extra.timeout ?? 300_000, ...(extra.todo ? { todo: extra.todo } : {}) };
  if (bannerShown) return { skip: `network namespaces unavailable: ${support.reason}` };
  bannerShown = true;
  const banner = '!'.repeat(100);
  console.error(`\n${banner}\n!!! FAULT TESTS SKIPPED: ${support.reason}\n!!! They need root, iproute2 and iptables; under CI=true they fail instead of skipping.\n${banner}\n`);
  return { skip: `network namespaces unavailable: ${support.reason}` };
}

export function requireNetns(): void {
  const support = probeNetns();
  if (!support.ok) assert.fail(`CI=true and the fault tests cannot run: ${support.reason}`);
}

// ---- recovery ----------------------------------------------------------------------------------

export interface Recovery {
  readonly label: string;
  readonly ms: number;
  readonly perEndpoint: string;
}

const PROBE_CLIENT = 9000;
let probeCounter = 0;

/**
 * How long after `since` (a heal, a restart, a SIGCONT) a fresh write was acknowledged through
 * every given endpoint: the cluster "serves writes again" when every API does. The probes are plain
 * unstamped PUTs to keys written once, recorded in the history like any other operation.
 */
export async function measureRecovery(cluster: NsCluster, history: History, label: string, since: number, endpoints: readonly Endpoint[] = cluster.endpoints(), deadlineMs = 40_000): Promise<Recovery> {
  const done = new Map<string, number>();
  await Promise.all(endpoints.map(async (endpoint) => {
    const giveUpAt = now() + deadlineMs;
    while (now() < giveUpAt) {
      const key = `probe/${label}/${endpoint.name}/${++probeCounter}`;
      const value = `probe-${process.pid}-${probeCounter}`;
      const op = await write('put', key, value, { history, clientId: PROBE_CLIENT, endpoint: () => endpoint, timeoutMs: 2000 });
      if (op.status === 'ok') {
        history.ackedUnique.set(key, value);
        done.set(endpoint.name, (op.completeTime as number) - since);
        return;
      }
      await sleep(20);
    }
  }));
  const missing = endpoints.filter((e) => !done.has(e.name)).map((e) => e.name);
  const ms = missing.length > 0 ? Infinity : Math.max(...done.values());
  const perEndpoint = [...done.entries()].map(([name, t]) => `${name} ${Math.round(t)}`).join(', ') + (missing.length > 0 ? `; never: ${missing.join(', ')}` : '');
  const recovery = { label, ms, perEndpoint };
  console.log(`# recovery after ${label}: ${Number.isFinite(ms) ? `${Math.round(ms)} ms` : 'NOT within the deadline'} until every API acknowledged a write (${perEndpoint})`);
  return recovery;
}

export function assertRecovered(recovery: Recovery): void {
  assert.ok(recovery.ms <= RECOVERY_BOUND_MS, `the cluster served writes again ${Math.round(recovery.ms)} ms after ${recovery.label}; the bound is ${RECOVERY_BOUND_MS} ms (${recovery.perEndpoint})`);
}

// ---- leadership ----------------------------------------------------------------------------------

/** Polls every node's /health and records which node claimed leadership in which term. */
export class LeaderWatch {
  readonly claims = new Map<number, Set<number>>();
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly cluster: NsCluster) {}

  start(): this {
    for (const id of this.cluster.ids) this.loops.push(this.loop(id));
    return this;
  }

  private async loop(id: number): Promise<void> {
    while (!this.stopping) {
      if (this.cluster.node(id).state === 'running') {
        const health = await this.cluster.health(id, 500);
        if (health?.state === 'leader' && typeof health.term === 'number') {
          const set = this.claims.get(health.term) ?? new Set<number>();
          set.add(id);
          this.claims.set(health.term, set);
        }
      }
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** Election safety as observed from outside: at most one leader per term. */
  assertOneLeaderPerTerm(): void {
    for (const [term, leaders] of this.claims) assert.ok(leaders.size <= 1, `term ${term} had two leaders: ${[...leaders].join(', ')}`);
  }

  describe(): string {
    return [...this.claims.entries()].sort((a, b) => a[0] - b[0]).map(([term, leaders]) => `t${term}:${[...leaders].join('/')}`).join(' ');
  }
}

// ---- final checks ----------------------------------------------------------------------------

/** Waits until every running node has applied the same index and holds the same revision. */
export async function waitForConvergence(cluster: NsCluster, timeoutMs = 30_000): Promise<NodeStatus[]> {
  return waitFor('every node to apply the same index and hold the same revision', async () => {
    const running = cluster.ids.filter((id) => cluster.node(id).state === 'running');
    const statuses = await Promise.all(running.map((id) => cluster.status(id)));
    if (statuses.some((s) => s === undefined)) return undefined;
    const all = statuses as NodeStatus[];
    const first = all[0];
    const same = all.every((s) => s.appliedIndex === first.appliedIndex && s.commitIndex === first.commitIndex && s.revision === first.revision && s.appliedIndex === s.commitIndex);
    return same ? all : undefined;
  }, timeoutMs, 100);
}

/** Each node's stale answer for each key must be the same (value and modRevision, or absent). */
export async function assertSameState(cluster: NsCluster, keys: readonly string[]): Promise<void> {
  const running = cluster.ids.filter((id) => cluster.node(id).state === 'running');
  const differences: string[] = [];
  for (let i = 0; i < keys.length; i += 32) {
    await Promise.all(keys.slice(i, i + 32).map(async (key) => {
      const answers = await Promise.all(running.map(async (id) => {
        const answer = await exchange(cluster.node(id).api, 'GET', `/kv/${encodeURIComponent(key)}?consistency=stale`, { timeoutMs: 5000 });
        if (answer.kind !== 'answer') return `error ${answer.kind}`;
        if (answer.status === 404) return 'absent';
        const body = answer.body as { value?: string; modRevision?: number };
        return `${answer.status} ${JSON.stringify(body.value)}@${body.modRevision}`;
      }));
      if (new Set(answers).size !== 1) differences.push(`${key}: ${running.map((id, j) => `node${id}=${answers[j]}`).join(' ')}`);
    }));
  }
  assert.deepEqual(differences, [], `the replicas disagree on ${differences.length} keys:\n${differences.slice(0, 20).join('\n')}`);
}

const VERIFY_CLIENT = 9999;

/**
 * After the faults: a final linearizable read of every hot key (into the history), and of every
 * key whose one write was acknowledged, which must return that write's value. Reads are retried
 * until they get an answer (a failed read is recorded and constrains nothing).
 */
export async function verifyAcknowledged(cluster: NsCluster, history: History, hotKeys: readonly string[]): Promise<{ lost: string[] }> {
  const endpoints = cluster.endpoints().filter((e) => e.name === 'gateway' || cluster.node(Number(e.name.slice(4))).state === 'running');
  let turn = 0;
  const readUntilAnswered = async (key: string) => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const op = await read(key, { history, clientId: VERIFY_CLIENT, endpoint: endpoints[turn++ % endpoints.length], timeoutMs: 7000 });
      if (op.status === 'ok') return op;
      await sleep(100);
    }
    throw new Error(`no answer to a read of ${key} in 20 attempts`);
  };
  for (const key of hotKeys) await readUntilAnswered(key);
  const lost: string[] = [];
  const entries = [...history.ackedUnique.entries()];
  for (let i = 0; i < entries.length; i += 16) {
    await Promise.all(entries.slice(i, i + 16).map(async ([key, value]) => {
      const op = await readUntilAnswered(key);
      if (op.output !== value) lost.push(`${key}: acknowledged ${JSON.stringify(value)}, read ${JSON.stringify(op.output)}`);
    }));
  }
  return { lost };
}

export interface ScenarioReport {
  readonly name: string;
  readonly history: History;
  readonly window: { from: number; to: number };
  readonly verdict: Verdict;
  readonly lost: readonly string[];
  readonly recoveries?: readonly Recovery[];
  readonly notes?: string;
  readonly marks?: readonly { readonly at: number; readonly label: string }[];
}

/** The one line per scenario, then the assertions that decide it. */
export function report(r: ScenarioReport): void {
  const { ops, ok, fail, unknown } = r.history.tally();
  const gap = r.history.longestAckGap(r.window.from, r.window.to);
  const list = r.recoveries ?? [];
  const sorted = list.map((x) => x.ms).sort((a, b) => a - b);
  const recoveries = list.length === 0 ? ''
    : list.length <= 8
      ? ` recovery=[${list.map((x) => `${x.label} ${Number.isFinite(x.ms) ? `${Math.round(x.ms)}ms` : 'never'}`).join(', ')}]`
      : ` recovery=[${list.length} heals: min ${Math.round(sorted[0])}ms, median ${Math.round(sorted[Math.floor(sorted.length / 2)])}ms, max ${Math.round(sorted[sorted.length - 1])}ms (${list.reduce((worst, x) => (x.ms > worst.ms ? x : worst)).label})]`;
  const verdictShort = r.verdict.result.verdict === 'linearizable' ? r.verdict.text : r.verdict.result.verdict.toUpperCase();
  console.log(`# SUMMARY ${r.name}: ops=${ops} ok=${ok} failed=${fail} unknown=${unknown} longest-ack-gap=${Math.round(gap.gapMs)}ms (at +${Math.round(gap.atMs)}ms) acked-once-keys=${r.history.ackedUnique.size} lost=${r.lost.length} checker=${verdictShort}${recoveries}${r.notes ? ` ${r.notes}` : ''}`);
  console.log(`# outcomes ${r.name}: ${r.history.describeOutcomes()}`);
  if (gap.gapMs > 1000) {
    const gapFrom = r.history.startedAt + gap.atMs;
    console.log(`# during the longest gap (+${Math.round(gap.atMs)}..+${Math.round(gap.atMs + gap.gapMs)}ms): ${r.history.activity(gapFrom, gapFrom + gap.gapMs)}`);
  }
  if (r.marks && r.marks.length > 0) console.log(`# timeline ${r.name}: ${r.marks.map((m) => `+${Math.round(m.at - r.history.startedAt)}ms ${m.label}`).join('; ')}`);
  assert.equal(r.verdict.result.verdict, 'linearizable', r.verdict.text);
  assert.deepEqual(r.lost, [], `acknowledged writes lost:\n${r.lost.slice(0, 20).join('\n')}`);
  for (const recovery of r.recoveries ?? []) assertRecovered(recovery);
}

export { check };

// ---- the scenario frame ------------------------------------------------------------------------

export interface ScenarioContext {
  readonly cluster: NsCluster;
  readonly history: History;
  readonly workload: Workload;
  readonly watch: LeaderWatch;
  readonly recoveries: Recovery[];
  notes: string[];
  /** Records a moment of the fault schedule for the timeline printed with the summary. */
  mark(label: string): number;
}

export interface ScenarioOptions {
  readonly name: string;
  readonly cluster?: Omit<NsClusterOptions, 'name'>;
  readonly workload?: Partial<Omit<WorkloadOptions, 'history' | 'label' | 'endpoints'>>;
  /** Acknowledged writes to see before the faults begin. */
  readonly warmupWrites?: number;
  /** Compare every node's stale answers for every key at the end (default true). */
  readonly compareReplicas?: boolean;
}

const clustersToStop = new Set<NsCluster>();
after(async () => {
  for (const cluster of clustersToStop) await cluster.stop();
});

/**
 * Starts a cluster and the workload, runs the faults in `body`, then heals everything, stops the
 * workload, waits for the replicas to converge, reads back every acknowledged write, checks the
 * history and prints the summary line. The cluster is removed whatever happens.
 */
export async function scenario(_t: TestContext, options: ScenarioOptions, body: (s: ScenarioContext) => Promise<void>): Promise<void> {
  if (!probeNetns().ok) requireNetns();
  let cluster: NsCluster | undefined;
  let workload: Workload | undefined;
  let watch: LeaderWatch | undefined;
  try {
    cluster = await NsCluster.start({ name: options.name, ...options.cluster });
    clustersToStop.add(cluster);
    const history = new History();
    const c = cluster;
    // Clients take a paused node out of rotation (as a load balancer's health check would);
    // requests already sent to it wait, and the scenarios aim probes at it on purpose.
    workload = new Workload({ history, label: options.name, endpoints: () => c.endpoints().filter((e) => !c.isPaused(e.name)), ...options.workload });
    watch = new LeaderWatch(cluster).start();
    const marks: { at: number; label: string }[] = [];
    const s: ScenarioContext = { cluster, history, workload, watch, recoveries: [], notes: [], mark: (label) => { const at = now(); marks.push({ at, label }); return at; } };
    workload.start();
    await history.waitForAckedWrites(options.warmupWrites ?? 50, 0, 30_000, 'the workload to get going');
    await body(s);
    // Whatever the body left behind: heal, resume, restart.
    await cluster.lab.heal();
    for (const id of cluster.ids) {
      if (cluster.node(id).state === 'paused') cluster.resume(id);
      if (cluster.node(id).state === 'dead') cluster.startNode(id);
    }
    await workload.stop();
    await watch.stop();
    await cluster.waitForLeader(20_000);
    await waitForConvergence(cluster);
    const { lost } = await verifyAcknowledged(cluster, history, workload.hotKeys);
    if (options.compareReplicas !== false) {
      await waitForConvergence(cluster);
      await assertSameState(cluster, [...new Set(history.ops.map((op) => op.key))]);
    }
    const verdict = check(history);
    s.notes.push(`leaders=${watch.describe()}`);
    report({ name: options.name, history, window: { from: workload.startedAt, to: workload.stoppedAt }, verdict, lost, recoveries: s.recoveries, notes: s.notes.join(' '), marks });
    watch.assertOneLeaderPerTerm();
  } catch (error) {
    workload?.halt();
    void watch?.stop();
    if (cluster) console.error(`# ${options.name}: logs kept in ${cluster.dumpLogs(options.name)}`);
    throw error;
  } finally {
    if (cluster) {
      await cluster.stop();
      clustersToStop.delete(cluster);
    }
  }
}

/**
 * Nothing sent to the cut-off nodes after the cut and answered before the heal was acknowledged
 * (a write committed or a linearizable read served): they had no quorum.
 */
export function assertNothingAcknowledgedBy(history: History, endpointNames: readonly string[], from: number, to: number): number {
  const offending: KvOperation[] = [];
  let sent = 0;
  for (const op of history.ops) {
    if (op.invokeTime <= from || op.completeTime === null || op.completeTime >= to) continue;
    const attempts = history.details.get(op.id)?.attempts ?? [];
    const last = attempts.at(-1);
    if (last === undefined || !endpointNames.includes(last.endpoint)) continue;
    sent++;
    if (op.status === 'ok') offending.push(op);
  }
  assert.equal(offending.length, 0, `the cut-off side (${endpointNames.join(', ')}) acknowledged ${offending.length} operations without a quorum:\n${history.explain(offending.slice(0, 20))}`);
  return sent;
}

/** A few direct writes and linearizable reads at `endpoint`, recorded; resolves with how they ended. */
export async function probeDirectly(history: History, endpoint: Endpoint, keys: readonly string[], timeoutMs = 8000): Promise<string> {
  const ops = await Promise.all(keys.flatMap((key, i) => [
    write('put', key, `direct-${process.pid}-${++probeCounter}-${i}`, { history, clientId: PROBE_CLIENT + 1, endpoint: () => endpoint, timeoutMs }),
    read(key, { history, clientId: PROBE_CLIENT + 1, endpoint, timeoutMs }),
  ]));
  const outcomes = new Map<string, number>();
  for (const op of ops) {
    const label = `${op.kind}:${history.details.get(op.id)?.attempts.at(-1)?.outcome.replace(/: .*/, '') ?? '?'}`;
    outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
  }
  return [...outcomes.entries()].map(([label, n]) => `${n}x${label}`).join(',');
}
