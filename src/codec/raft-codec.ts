// Binary encoding of Raft entries and messages, shared by the write-ahead log and the peer
// transport. MessagePack (msgpackr) keeps command payloads as raw bytes, without JSON or base64.
// Decoding validates the shape, because bytes from a disk or a peer are not to be trusted, and
// refuses any string that is not valid UTF-8 (utf8-check.ts), so bad bytes never become a different
// key or value.

import { Packr } from 'msgpackr';
import { findInvalidText, MalformedPackError } from './utf8-check.js';
import type { Entry, HardState, Member, Membership, Message, SnapshotMeta } from '../raft/types.js';

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

export class CodecError extends Error {
  override readonly name = 'CodecError';
}

export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * A string in the bytes is not valid UTF-8. `decoded` is what msgpackr made of the bytes anyway (bad
 * sequences replaced): good enough to find a request id to answer, never to act on.
 */
export class InvalidTextError extends CodecError {
  constructor(readonly offset: number, readonly decoded: unknown) {
    super(`a string at byte ${offset} is not valid UTF-8`);
  }
}

export function decodeValue(bytes: Uint8Array): unknown {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw new CodecError(`undecodable bytes: ${(error as Error).message}`);
  }
  let invalidAt: number;
  try {
    invalidAt = findInvalidText(bytes);
  } catch (error) {
    if (error instanceof MalformedPackError) throw new CodecError(`undecodable bytes: ${error.message}`);
    throw error;
  }
  if (invalidAt >= 0) throw new InvalidTextError(invalidAt, value);
  return value;
}

type Shape = Record<string, unknown>;

function isRecord(value: unknown): value is Shape {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function wholeNumber(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new CodecError(`${field} is not a non-negative integer`);
  return value;
}

function bool(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new CodecError(`${field} is not a boolean`);
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new CodecError(`${field} is not a string`);
  return value;
}

function bytes(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new CodecError(`${field} is not binary`);
  return value;
}

export function checkMembership(value: unknown): Membership {
  if (!isRecord(value) || !Array.isArray(value.members)) throw new CodecError('membership has no member list');
  const members: Member[] = value.members.map((raw: unknown, i: number): Member => {
    if (!isRecord(raw)) throw new CodecError(`member ${i} is not a record`);
    const role = raw.role;
    if (role !== 'voter' && role !== 'learner') throw new CodecError(`member ${i} has an unknown role`);
    return { id: wholeNumber(raw.id, 'member.id'), role, peerAddr: text(raw.peerAddr, 'member.peerAddr'), httpAddr: text(raw.httpAddr, 'member.httpAddr') };
  });
  return { members };
}

export function checkEntry(value: unknown): Entry {
  if (!isRecord(value)) throw new CodecError('entry is not a record');
  const term = wholeNumber(value.term, 'entry.term');
  const index = wholeNumber(value.index, 'entry.index');
  switch (value.kind) {
    case 'command': return { kind: 'command', term, index, data: bytes(value.data, 'entry.data') };
    case 'noop': return { kind: 'noop', term, index };
    case 'config': return { kind: 'config', term, index, membership: checkMembership(value.membership) };
    default: throw new CodecError('entry has an unknown kind');
  }
}

export function checkHardState(value: unknown): HardState {
  if (!isRecord(value)) throw new CodecError('hard state is not a record');
  return { term: wholeNumber(value.term, 'term'), votedFor: wholeNumber(value.votedFor, 'votedFor'), commitIndex: wholeNumber(value.commitIndex, 'commitIndex') };
}

export function checkSnapshotMeta(value: unknown): SnapshotMeta {
  if (!isRecord(value)) throw new CodecError('snapshot meta is not a record');
  return { index: wholeNumber(value.index, 'snapshot.index'), term: wholeNumber(value.term, 'snapshot.term'), membership: checkMembership(value.membership) };
}

/** Rebuild a Message from decoded data, field by field, refusing anything malformed. */
export function checkMessage(value: unknown): Message {
  if (!isRecord(value)) throw new CodecError('message is not a record');
  const base = { from: wholeNumber(value.from, 'from'), to: wholeNumber(value.to, 'to'), term: wholeNumber(value.term, 'term') };
  switch (value.type) {
    case 'voteRequest':
      return { ...base, type: 'voteRequest', preVote: bool(value.preVote, 'preVote'), lastLogIndex: wholeNumber(value.lastLogIndex, 'lastLogIndex'), lastLogTerm: wholeNumber(value.lastLogTerm, 'lastLogTerm'), transfer: bool(value.transfer, 'transfer') };
    case 'voteResponse':
      return { ...base, type: 'voteResponse', preVote: bool(value.preVote, 'preVote'), granted: bool(value.granted, 'granted') };
    case 'appendRequest': {
      if (!Array.isArray(value.entries)) throw new CodecError('entries is not a list');
      return { ...base, type: 'appendRequest', prevLogIndex: wholeNumber(value.prevLogIndex, 'prevLogIndex'), prevLogTerm: wholeNumber(value.prevLogTerm, 'prevLogTerm'), entries: value.entries.map(checkEntry), leaderCommit: wholeNumber(value.leaderCommit, 'leaderCommit') };
    }
    case 'appendResponse':
      return { ...base, type: 'appendResponse', success: bool(value.success, 'success'), matchIndex: wholeNumber(value.matchIndex, 'matchIndex'), conflictIndex: wholeNumber(value.conflictIndex, 'conflictIndex'), conflictTerm: wholeNumber(value.conflictTerm, 'conflictTerm'), rejectedIndex: wholeNumber(value.rejectedIndex, 'rejectedIndex') };
    case 'heartbeatRequest':
      return { ...base, type: 'heartbeatRequest', commitIndex: wholeNumber(value.commitIndex, 'commitIndex'), context: wholeNumber(value.context, 'context') };
    case 'heartbeatResponse':
      return { ...base, type: 'heartbeatResponse', context: wholeNumber(value.context, 'context') };
    case 'snapshotRequest':
      return { ...base, type: 'snapshotRequest', snapshot: checkSnapshotMeta(value.snapshot) };
    case 'timeoutNow':
      return { ...base, type: 'timeoutNow' };
    case 'readIndexRequest':
      return { ...base, type: 'readIndexRequest', context: wholeNumber(value.context, 'context') };
    case 'readIndexResponse':
      return { ...base, type: 'readIndexResponse', context: wholeNumber(value.context, 'context'), readIndex: wholeNumber(value.readIndex, 'readIndex') };
    default:
      throw new CodecError('unknown message type');
  }
}

export function encodeMessage(message: Message): Uint8Array {
  return encodeValue(message);
}

export function decodeMessage(data: Uint8Array): Message {
  return checkMessage(decodeValue(data));
}

export function encodeEntry(entry: Entry): Uint8Array {
  return encodeValue(entry);
}

export function decodeEntry(data: Uint8Array): Entry {
  return checkEntry(decodeValue(data));
}
