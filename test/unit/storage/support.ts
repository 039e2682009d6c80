// Helpers shared by the storage tests: a seeded generator, temporary directories, entry builders,
// a logger that remembers what it was told, and comparisons that ignore Buffer-vs-Uint8Array.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../../src/common/logger.js';
import type { Entry, HardState, Membership, SnapshotMeta } from '../../../src/raft/types.js';

/** mulberry32: tiny, seeded, reproducible; the tests never use Math.random. */
export class TestRng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, maxExclusive). */
  int(min: number, maxExclusive: number): number {
    return min + Math.floor(this.next() * (maxExclusive - min));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  bytes(count: number): Uint8Array {
    const out = new Uint8Array(count);
    for (let k = 0; k < count; k++) out[k] = this.int(0, 256);
    return out;
  }
}

export async function withTempDir<T>(body: (directory: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(tmpdir(), 'wal-test-'));
  try {
    return await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

export const MEMBERSHIP: Membership = { members: [{ id: 1, role: 'voter', peerAddr: 'n1:7001', httpAddr: 'n1:8001' }, { id: 2, role: 'voter', peerAddr: 'n2:7001', httpAddr: 'n2:8001' }] };

export function command(index: number, term: number, sizeBytes = 16): Entry {
  const data = new Uint8Array(sizeBytes);
  for (let k = 0; k < sizeBytes; k++) data[k] = (index * 31 + term * 7 + k) & 0xff;
  return { kind: 'command', index, term, data };
}

export function commands(from: number, to: number, term: number, sizeBytes = 16): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= to; index++) out.push(command(index, term, sizeBytes));
  return out;
}

export function snapshotAt(index: number, term: number): SnapshotMeta {
  return { index, term, membership: MEMBERSHIP };
}

export function hardState(term: number, votedFor: number, commitIndex: number): HardState {
  return { term, votedFor, commitIndex };
}

/** A plain, comparable form: data as hex, so Buffer and Uint8Array compare equal. */
export function plainEntry(entry: Entry): unknown {
  switch (entry.kind) {
    case 'command': return { kind: entry.kind, index: entry.index, term: entry.term, data: Buffer.from(entry.data).toString('hex') };
    case 'noop': return { kind: entry.kind, index: entry.index, term: entry.term };
    case 'config': return { kind: entry.kind, index: entry.index, term: entry.term, membership: entry.membership };
  }
}

export function assertSameEntries(actual: readonly Entry[], expected: readonly Entry[], message?: string): void {
  assert.deepEqual(actual.map(plainEntry), expected.map(plainEntry), message);
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A logger that keeps every line, for asserting on warnings. */
export function recordingLogger(lines: LogLine[] = []): Logger & { readonly lines: LogLine[] } {
  const make = (bound: Record<string, unknown>): Logger => ({
    debug: (msg, fields) => { lines.push({ level: 'debug', msg, fields: { ...bound, ...fields } }); },
    info: (msg, fields) => { lines.push({ level: 'info', msg, fields: { ...bound, ...fields } }); },
    warn: (msg, fields) => { lines.push({ level: 'warn', msg, fields: { ...bound, ...fields } }); },
    error: (msg, fields) => { lines.push({ level: 'error', msg, fields: { ...bound, ...fields } }); },
    child: (fields) => make({ ...bound, ...fields }),
  });
  return Object.assign(make({}), { lines });
}

/** [start, end) of each record in a segment's bytes, read from the length fields (no validation). */
export function recordSpans(bytes: Buffer): Array<{ readonly start: number; readonly end: number }> {
  const spans: Array<{ start: number; end: number }> = [];
  let at = 24;
  while (at + 9 <= bytes.length) {
    const end = at + 9 + bytes.readUInt32LE(at);
    if (end > bytes.length) break;
    spans.push({ start: at, end });
    at = end;
  }
  return spans;
}
