#!/usr/bin/env node
// kvctl: the store from the command line. Exit codes a script can rely on:
//   0 success, 1 the key does not exist, 2 usage error, 3 the store refused or failed.

import { rename, unlink } from 'node:fs/promises';
import { KvClient, KvError, type MembersView } from '../client/kv-client.js';
import { BackupFormatError, verifyBackupFile } from '../server/backup.js';

const USAGE = `usage: kvctl [--endpoints host:port,...] <command>
commands:
  put <key> <value>              write a value
  get <key> [--stale] [--revision N]   read a value (linearizable unless --stale)
  delete <key>                   delete a key
  status                         the cluster's status
  health                         the answering node's health
  member list [--json]           the members, with progress in the leader's view
  member add <id> <peerAddr> <httpAddr>   add a learner (it is promoted once caught up)
  member remove <id> [--force]   remove a member (a leader hands over first)
  member promote <id> [--force]  make a learner a voter
  leader transfer [<id>]         hand leadership to <id>, or the most up-to-date voter
  snapshot save <file>           a checksummed backup (restore: raft-node --restore <file>)
--force skips the live-quorum and catch-up checks.
endpoints default to $KV_ENDPOINTS, else localhost:8080 (the gateway)`;

function fail(code: number, message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let endpoints = (process.env.KV_ENDPOINTS ?? 'localhost:8080').split(',');
  let stale = false;
  let revision: number | undefined;
  let force = false;
  let json = false;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--endpoints') endpoints = (args[++i] ?? fail(2, USAGE)).split(',');
    else if (arg.startsWith('--endpoints=')) endpoints = arg.slice('--endpoints='.length).split(',');
    else if (arg === '--stale') stale = true;
    else if (arg === '--force') force = true;
    else if (arg === '--json') json = true;
    else if (arg === '--revision') revision = Number(args[++i]);
    else if (arg === '--help' || arg === '-h') fail(0, USAGE);
    else positional.push(arg);
  }
  if (revision !== undefined && (!Number.isInteger(revision) || revision < 1)) fail(2, 'kvctl: --revision needs a positive integer');
  const [command, ...rest] = positional;
  const client = new KvClient({ endpoints: endpoints.map((e) => e.trim()).filter((e) => e !== ''), timeoutMs: 10_000 });
  try {
    switch (command) {
      case 'put': {
        if (rest.length !== 2) fail(2, USAGE);
        process.stdout.write(`${JSON.stringify(await client.put(rest[0], rest[1]))}\n`);
        break;
      }
      case 'get': {
        if (rest.length !== 1) fail(2, USAGE);
        const answer = await client.get(rest[0], { consistency: stale ? 'stale' : 'linearizable', ...(revision ? { revision } : {}) });
        if (answer === null) fail(1, `kvctl: key "${rest[0]}" not found`);
        process.stdout.write(`${JSON.stringify(answer)}\n`);
        break;
      }
      case 'delete': {
        if (rest.length !== 1) fail(2, USAGE);
        if (!(await client.delete(rest[0]))) fail(1, `kvctl: key "${rest[0]}" not found`);
        process.stdout.write(`${JSON.stringify({ key: rest[0], status: 'deleted' })}\n`);
        break;
      }
      case 'status': process.stdout.write(`${JSON.stringify(await client.clusterStatus(), null, 2)}\n`); break;
      case 'health': process.stdout.write(`${JSON.stringify(await client.health())}\n`); break;
      case 'member': await member(client, rest, force, json); break;
      case 'leader': {
        if (rest[0] !== 'transfer' || rest.length > 2) fail(2, USAGE);
        const outcome = await client.transferLeader(rest[1] === undefined ? undefined : memberId(rest[1]));
        process.stdout.write(`${JSON.stringify(outcome)}\n`);
        break;
      }
      case 'snapshot': {
        if (rest[0] !== 'save' || rest.length !== 2) fail(2, USAGE);
        await saveSnapshot(client, rest[1]);
        break;
      }
      default: fail(2, USAGE);
    }
  } catch (error) {
    if (error instanceof KvError) fail(3, `kvctl: ${error.code}: ${error.message}`);
    throw error;
  } finally {
    client.close();
  }
}

function memberId(text: string): number {
  const id = Number(text);
  if (!/^\d{1,7}$/.test(text) || id < 1) fail(2, `kvctl: "${text}" is not a member id`);
  return id;
}

async function member(client: KvClient, args: readonly string[], force: boolean, json: boolean): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'list': {
      if (rest.length !== 0) fail(2, USAGE);
      const view = await client.members();
      process.stdout.write(json ? `${JSON.stringify(view)}\n` : formatMembers(view));
      return;
    }
    case 'add': {
      if (rest.length !== 3) fail(2, USAGE);
      process.stdout.write(`${JSON.stringify(await client.addMember({ id: memberId(rest[0]), peerAddr: rest[1], httpAddr: rest[2] }, { force }))}\n`);
      return;
    }
    case 'remove': {
      if (rest.length !== 1) fail(2, USAGE);
      process.stdout.write(`${JSON.stringify(await client.removeMember(memberId(rest[0]), { force }))}\n`);
      return;
    }
    case 'promote': {
      if (rest.length !== 1) fail(2, USAGE);
      process.stdout.write(`${JSON.stringify(await client.promoteMember(memberId(rest[0]), { force }))}\n`);
      return;
    }
    default: fail(2, USAGE);
  }
}

function formatMembers(view: MembersView): string {
  const rows = [['ID', 'ROLE', 'PEER', 'HTTP', 'MATCH', 'CAUGHT-UP', 'LIVE', '']];
  for (const m of view.members) {
    rows.push([String(m.id), m.role, m.peerAddr, m.httpAddr || '-', m.matchIndex === undefined ? '-' : String(m.matchIndex),
      m.caughtUp === undefined ? '-' : String(m.caughtUp), m.live === undefined ? '-' : String(m.live), m.id === view.leader ? 'leader' : '']);
  }
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const lines = rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd());
  return `cluster ${view.clusterId}  term ${view.term}  (${view.view === 'leader' ? 'the leader\'s view' : `node ${view.nodeId}'s own view: no leader answered`})\n${lines.join('\n')}\n`;
}

async function saveSnapshot(client: KvClient, path: string): Promise<void> {
  const temp = `${path}.partial`;
  try {
    const bytes = await client.saveSnapshot(temp);
    const verified = await verifyBackupFile(temp);
    await rename(temp, path);
    process.stdout.write(`${JSON.stringify({ file: path, bytes, index: verified.meta.index, revision: verified.meta.revision, clusterId: verified.meta.clusterId, nodeId: verified.meta.nodeId })}\n`);
  } catch (error) {
    await unlink(temp).catch(() => {});
    if (error instanceof BackupFormatError) fail(3, `kvctl: the backup did not verify: ${error.message}`);
    throw error;
  }
}

void main();
