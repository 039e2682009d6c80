#!/usr/bin/env node
// rolling-restart: restart every member of a live cluster, one at a time, without downtime:
// followers first, the leader last; leadership is transferred away before a leader stops; after
// each start, wait until the node is healthy and has caught up before touching the next one.
// How a node is stopped and started is the operator's (systemd, docker compose, a process
// supervisor): two shell commands with {id}, {peerAddr} and {httpAddr} filled in.
//
// Exit codes: 0 every node restarted; 2 usage error; 3 the cluster was not healthy or a node did
// not come back in time (the script stops there, leaving the rest untouched).

import { spawn } from 'node:child_process';
import { KvClient, KvError, type MemberInfo, type MembersView } from '../client/kv-client.js';

const USAGE = `usage: rolling-restart --endpoints host:port,... --stop-cmd 'CMD' --start-cmd 'CMD' [options]
  --stop-cmd / --start-cmd   shell commands; {id}, {peerAddr} and {httpAddr} are replaced per node
  --only 1,2,3               restart only these members (default: all)
  --timeout-ms N             per step (default 120000)
  --settle-ms N              pause after a node caught up, before the next (default 1000)
examples:
  --stop-cmd 'systemctl stop raft-node@{id}' --start-cmd 'systemctl start raft-node@{id}'
  --stop-cmd 'docker compose stop node{id}'  --start-cmd 'docker compose start node{id}'`;

interface Options {
  readonly endpoints: string[];
  readonly stopCommand: string;
  readonly startCommand: string;
  readonly only: number[] | null;
  readonly timeoutMs: number;
  readonly settleMs: number;
}

class StepFailed extends Error {}

function log(message: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), msg: message, ...fields })}\n`);
}

function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') usage(0);
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (match === null) usage(2);
    values.set(match[1], match[2] ?? argv[++i] ?? usage(2));
  }
  const endpoints = (values.get('endpoints') ?? process.env.KV_ENDPOINTS ?? '').split(',').map((e) => e.trim()).filter((e) => e !== '');
  const stopCommand = values.get('stop-cmd');
  const startCommand = values.get('start-cmd');
  if (endpoints.length === 0 || stopCommand === undefined || startCommand === undefined) usage(2);
  const only = values.get('only')?.split(',').map(Number) ?? null;
  if (only !== null && only.some((id) => !Number.isSafeInteger(id) || id < 1)) usage(2);
  const timeoutMs = Number(values.get('timeout-ms') ?? 120_000);
  const settleMs = Number(values.get('settle-ms') ?? 1000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || !Number.isFinite(settleMs) || settleMs < 0) usage(2);
  return { endpoints, stopCommand, startCommand, only, timeoutMs, settleMs };
}

function usage(code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(`${USAGE}\n`);
  process.exit(code);
}

function fill(command: string, member: MemberInfo): string {
  return command.replaceAll('{id}', String(member.id)).replaceAll('{peerAddr}', member.peerAddr).replaceAll('{httpAddr}', member.httpAddr);
}

function run(command: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => { clearTimeout(timer); reject(new StepFailed(`${command}: ${error.message}`)); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new StepFailed(`"${command}" failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new StepFailed(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
}

/** The leader's view of a cluster whose voters are all live and caught up. */
async function healthyCluster(client: KvClient, timeoutMs: number): Promise<MembersView> {
  return waitUntil('every voter to be live and caught up', timeoutMs, async () => {
    const view = await client.members();
    if (view.view !== 'leader') return undefined;
    const ready = view.members.every((m) => m.role === 'learner' || (m.live === true && m.caughtUp === true));
    return ready ? view : undefined;
  });
}

async function nodeHealth(httpAddr: string): Promise<Record<string, unknown> | undefined> {
  const client = new KvClient({ endpoints: [httpAddr], timeoutMs: 1000 });
  try {
    return await client.health();
  } catch (error) {
    if (error instanceof KvError && error.status === 503) return undefined;
    throw error;
  } finally {
    client.close();
  }
}

async function restartOne(client: KvClient, id: number, options: Options): Promise<number> {
  const startedMs = Date.now();
  let view = await healthyCluster(client, options.timeoutMs);
  const member = view.members.find((m) => m.id === id);
  if (member === undefined) throw new StepFailed(`node ${id} is not a member any more`);
  if (member.httpAddr === '') throw new StepFailed(`node ${id}'s HTTP address is not recorded yet; try again in a few seconds`);
  if (view.leader === id) {
    const outcome = await client.transferLeader();
    log('leadership transferred away', { from: id, to: outcome.leader, tookMs: outcome.tookMs });
    view = await healthyCluster(client, options.timeoutMs);
  }
  const leaderHealth = await waitUntil('the leader\'s commit index', options.timeoutMs, async () => {
    const leader = view.members.find((m) => m.id === view.leader);
    return leader === undefined || leader.httpAddr === '' ? undefined : nodeHealth(leader.httpAddr);
  });
  const target = Number(leaderHealth.commitIndex ?? 0);
  log('stopping', { id, command: fill(options.stopCommand, member) });
  await run(fill(options.stopCommand, member), options.timeoutMs);
  await waitUntil(`node ${id} to stop answering`, options.timeoutMs, async () => {
    try {
      await nodeHealth(member.httpAddr);
      return undefined;
    } catch {
      return true;
    }
  });
  log('starting', { id, command: fill(options.startCommand, member) });
  await run(fill(options.startCommand, member), options.timeoutMs);
  await waitUntil(`node ${id} to be healthy and applied up to ${target}`, options.timeoutMs, async () => {
    const health = await nodeHealth(member.httpAddr);
    return health?.status === 'healthy' && Number(health.appliedIndex) >= target ? true : undefined;
  });
  await waitUntil(`the leader to see node ${id} live and caught up`, options.timeoutMs, async () => {
    const now = await client.members();
    const seen = now.members.find((m) => m.id === id);
    return now.view === 'leader' && seen?.live === true && (seen.role === 'learner' || seen.caughtUp === true) ? true : undefined;
  });
  const tookMs = Date.now() - startedMs;
  log('node restarted and caught up', { id, appliedAtLeast: target, tookMs });
  return tookMs;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const client = new KvClient({ endpoints: options.endpoints, timeoutMs: 10_000 });
  try {
    const view = await healthyCluster(client, options.timeoutMs);
    const ids = view.members.map((m) => m.id).filter((id) => options.only === null || options.only.includes(id));
    // Followers first, the leader last: one leadership transfer for the whole run, usually.
    const order = [...ids.filter((id) => id !== view.leader).sort((a, b) => a - b), ...ids.filter((id) => id === view.leader)];
    log('rolling restart', { clusterId: view.clusterId, order });
    const times: Record<string, number> = {};
    for (const id of order) {
      times[id] = await restartOne(client, id, options);
      if (options.settleMs > 0) await new Promise((resolve) => setTimeout(resolve, options.settleMs));
    }
    log('rolling restart done', { restarted: order, tookMs: times });
  } catch (error) {
    if (error instanceof StepFailed || error instanceof KvError) {
      process.stderr.write(`rolling-restart: ${error.message}\n`);
      process.exit(3);
    }
    throw error;
  } finally {
    client.close();
  }
}

void main();
