// The simulator's tiny replicated state machine: a map of string keys to string values. Commands
// are JSON, `{op, key, value, opId}`, applied in log order; every applied command produces an output,
// decided at apply time (a get's value, whether a delete found its key). Reads go through the log.

import type { Entry, Index, Membership, Term } from '../../src/raft/types.js';

export type KvOp = 'put' | 'get' | 'delete';

export interface KvCommand {
  readonly op: KvOp;
  readonly key: string;
  readonly value?: string;
  /** Unique across the run: identifies the client operation that proposed this command. */
  readonly opId: number;
}

export type KvOutput =
  | { readonly op: 'put' }
  | { readonly op: 'get'; readonly value: string | null }
  | { readonly op: 'delete'; readonly deleted: boolean };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/** Decoding is cached per buffer: entries travel between simulated nodes by reference. */
const textCache = new WeakMap<Uint8Array, string>();

export function commandText(data: Uint8Array): string {
  let text = textCache.get(data);
  if (text === undefined) {
    text = decoder.decode(data);
    textCache.set(data, text);
  }
  return text;
}

const commandCache = new WeakMap<Uint8Array, KvCommand | null>();

/** The command in `data`, or null when it is not one of ours (garbage is never applied). */
export function decodeCommand(data: Uint8Array): KvCommand | null {
  let command = commandCache.get(data);
  if (command !== undefined) return command;
  command = null;
  try {
    const parsed = JSON.parse(commandText(data)) as Partial<KvCommand> | null;
    if (
      parsed !== null && typeof parsed === 'object' &&
      (parsed.op === 'put' || parsed.op === 'get' || parsed.op === 'delete') &&
      typeof parsed.key === 'string' && typeof parsed.opId === 'number'
    ) {
      command = parsed as KvCommand;
    }
  } catch {
    command = null;
  }
  commandCache.set(data, command);
  return command;
}

/** What makes two entries "the same" for the checkers: kind and content, not the term. */
export function entryIdentity(entry: Entry): string {
  switch (entry.kind) {
    case 'noop':
      return 'noop';
    case 'config':
      return `config:${JSON.stringify(entry.membership)}`;
    case 'command':
      return `cmd:${commandText(entry.data)}`;
  }
}

/** An immutable image of the state machine at `index`: what a snapshot stores and ships. */
export interface KvImage {
  readonly index: Index;
  readonly term: Term;
  readonly membership: Membership;
  readonly pairs: readonly (readonly [string, string])[];
}

export class KvStateMachine {
  private readonly values = new Map<string, string>();
  private appliedIndexValue: Index;
  private appliedTermValue: Term;
  private membershipValue: Membership;

  constructor(image: KvImage) {
    for (const [key, value] of image.pairs) this.values.set(key, value);
    this.appliedIndexValue = image.index;
    this.appliedTermValue = image.term;
    this.membershipValue = image.membership;
  }

  get appliedIndex(): Index {
    return this.appliedIndexValue;
  }

  get appliedTerm(): Term {
    return this.appliedTermValue;
  }

  get membership(): Membership {
    return this.membershipValue;
  }

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  /** Applies the next entry; the caller checks that it is the next one. Null for non-commands. */
  apply(entry: Entry): KvOutput | null {
    this.appliedIndexValue = entry.index;
    this.appliedTermValue = entry.term;
    if (entry.kind === 'config') {
      this.membershipValue = entry.membership;
      return null;
    }
    if (entry.kind === 'noop') return null;
    const command = decodeCommand(entry.data);
    if (command === null) return null;
    switch (command.op) {
      case 'put':
        this.values.set(command.key, command.value ?? '');
        return { op: 'put' };
      case 'get':
        return { op: 'get', value: this.values.get(command.key) ?? null };
      case 'delete':
        return { op: 'delete', deleted: this.values.delete(command.key) };
    }
  }

  image(): KvImage {
    const pairs = [...this.values.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return Object.freeze({
      index: this.appliedIndexValue,
      term: this.appliedTermValue,
      membership: this.membershipValue,
      pairs: Object.freeze(pairs.map((pair) => Object.freeze(pair))),
    });
  }
}

export function emptyImage(membership: Membership): KvImage {
  return Object.freeze({ index: 0, term: 0, membership, pairs: Object.freeze([]) });
}

/** A short digest of an image's contents (index, term and every pair): what a snapshot file's
 * checksum would catch, and what replicas compare to find divergence. FNV-1a, 32 bits, in hex. */
export function imageDigest(image: KvImage): string {
  let hash = 0x811c9dc5;
  const text = `${image.index}/${image.term}:${JSON.stringify(image.pairs)}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return `${(hash >>> 0).toString(16).padStart(8, '0')}:${image.pairs.length}`;
}
