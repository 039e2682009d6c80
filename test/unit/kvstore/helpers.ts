// Shared by the state machine tests: temp directories, log entries built from commands, a seeded
// generator, and a small client that numbers its own writes like the real one does.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCommand, type ClientStamp, type KvCommand } from '../../../src/kvstore/commands.js';
import { KvStateMachine, type CommandResult, type KvStateMachineOptions } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';

export function tempDir(prefix = 'kvstore-test-'): { readonly path: string; readonly remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Open a state machine in a fresh temp directory; `done()` closes it and removes the directory.
 * Tests of logic alone may pass `unsafeNoSync` so that a busy shared disk does not slow them down.
 */
export async function freshMachine(options: KvStateMachineOptions = {}): Promise<{ readonly sm: KvStateMachine; readonly path: string; readonly done: () => Promise<void> }> {
  const dir = tempDir();
  const sm = await KvStateMachine.open(join(dir.path, 'state'), options);
  return { sm, path: join(dir.path, 'state'), done: async () => { await sm.close(); dir.remove(); } };
}

/** Builds a log: each call appends entries with the next indexes. */
export class LogBuilder {
  private nextIndex: number;
  readonly entries: Entry[] = [];

  constructor(firstIndex = 1, private readonly term = 1) {
    this.nextIndex = firstIndex;
  }

  command(command: KvCommand): Entry {
    return this.push({ kind: 'command', term: this.term, index: this.nextIndex, data: encodeCommand(command) });
  }

  raw(data: Uint8Array): Entry {
    return this.push({ kind: 'command', term: this.term, index: this.nextIndex, data });
  }

  noop(): Entry {
    return this.push({ kind: 'noop', term: this.term, index: this.nextIndex });
  }

  config(): Entry {
    return this.push({ kind: 'config', term: this.term, index: this.nextIndex, membership: { members: [{ id: 1, role: 'voter', peerAddr: 'a:1', httpAddr: 'a:2' }] } });
  }

  put(key: string, value: string, proposedAtMs = 1_000, client?: ClientStamp): Entry {
    return this.command(client === undefined ? { v: 1, op: 'put', key, value, proposedAtMs } : { v: 1, op: 'put', key, value, client, proposedAtMs });
  }

  del(key: string, proposedAtMs = 1_000, client?: ClientStamp): Entry {
    return this.command(client === undefined ? { v: 1, op: 'delete', key, proposedAtMs } : { v: 1, op: 'delete', key, client, proposedAtMs });
  }

  compact(revision: number, proposedAtMs = 1_000): Entry {
    return this.command({ v: 1, op: 'compact', revision, proposedAtMs });
  }

  /** The entries added since `mark` (an entries.length taken earlier). */
  since(mark: number): Entry[] {
    return this.entries.slice(mark);
  }

  get lastIndex(): number {
    return this.nextIndex - 1;
  }

  private push(entry: Entry): Entry {
    this.entries.push(entry);
    this.nextIndex += 1;
    return entry;
  }
}

/** Apply one entry and return its result (undefined for noop and config entries). */
export function applyOne(sm: KvStateMachine, entry: Entry): CommandResult | undefined {
  return sm.apply([entry]).get(entry.index);
}

/** A small, fast, seeded generator (mulberry32): one seed reproduces one run exactly. */
export class SeededRandom {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }
}

/** Collect an async stream of chunks into an array. */
export async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

export async function* fromArray(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

/**
 * Make every later batch commit of the machine's engine fail as a failed flush would (the error is
 * kept as the engine's failure and thrown). A stand-in: lmdb-js gives no way to make a real commit
 * fail on demand.
 */
export function failBatchCommits(sm: KvStateMachine, message = 'injected: fdatasync failed'): void {
  const engine = (sm as unknown as { engine: { commitBatch: () => void; failed: Error | null } }).engine;
  engine.commitBatch = () => {
    const error = new Error(message);
    engine.failed ??= error;
    throw error;
  };
}
