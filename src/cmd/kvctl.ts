#!/usr/bin/env node
// kvctl: the store from the command line. Exit codes a script can rely on:
//   0 success, 1 the key does not exist, 2 usage error, 3 the store refused or failed.

import { KvClient, KvError } from '../client/kv-client.js';

const USAGE = `usage: kvctl [--endpoints host:port,...] <command>
commands:
  put <key> <value>              write a value
  get <key> [--stale] [--revision N]   read a value (linearizable unless --stale)
  delete <key>                   delete a key
  status                         the cluster's status
  health                         the answering node's health
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
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--endpoints') endpoints = (args[++i] ?? fail(2, USAGE)).split(',');
    else if (arg.startsWith('--endpoints=')) endpoints = arg.slice('--endpoints='.length).split(',');
    else if (arg === '--stale') stale = true;
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
      default: fail(2, USAGE);
    }
  } catch (error) {
    if (error instanceof KvError) fail(3, `kvctl: ${error.code}: ${error.message}`);
    throw error;
  } finally {
    client.close();
  }
}

void main();
