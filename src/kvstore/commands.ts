// The commands the key-value state machine applies, as they travel inside Raft log entries
// (CommandEntry.data). Every command carries a format version `v`, so that later operations (txn,
// lease) can be added without a flag day: a replica that meets a version or op it does not know
// answers that entry with an error result instead of crashing, and stays in step with its peers.
//
// Decoding is validation: the bytes come from a disk or a peer, so every field is checked and
// rebuilt; nothing of the decoded object is passed on unchecked.

import { CodecError, decodeValue, encodeValue } from '../codec/raft-codec.js';
import { validateKey } from './limits.js';

export const COMMAND_FORMAT_VERSION = 1;

/** Client ids are opaque; the bound keeps the session index keys small. */
export const MAX_CLIENT_ID_BYTES = 256;

export interface ClientStamp {
  readonly clientId: string;
  /** This write's sequence number, from 1, unique per client. */
  readonly seq: number;
  /** Every seq <= ackedSeq was answered to the client: its stored results may be forgotten. */
  readonly ackedSeq: number;
}

export type KvCommand =
  | { readonly v: 1; readonly op: 'put'; readonly key: string; readonly value: string; readonly client?: ClientStamp; readonly proposedAtMs: number }
  | { readonly v: 1; readonly op: 'delete'; readonly key: string; readonly client?: ClientStamp; readonly proposedAtMs: number }
  | { readonly v: 1; readonly op: 'compact'; readonly revision: number; readonly proposedAtMs: number };

/** Why a command could not be decoded; `code` is the error code its apply result carries. */
export type CommandDecodeCode = 'BAD_REQUEST' | 'UNSUPPORTED_COMMAND' | 'INVALID_KEY';

export class CommandDecodeError extends CodecError {
  constructor(readonly code: CommandDecodeCode, message: string) {
    super(message);
  }
}

export function encodeCommand(command: KvCommand): Uint8Array {
  // Rebuilt field by field so that an `undefined` client never reaches the wire as a nil field.
  switch (command.op) {
    case 'put':
      return encodeValue(command.client === undefined
        ? { v: command.v, op: 'put', key: command.key, value: command.value, proposedAtMs: command.proposedAtMs }
        : { v: command.v, op: 'put', key: command.key, value: command.value, client: stampFields(command.client), proposedAtMs: command.proposedAtMs });
    case 'delete':
      return encodeValue(command.client === undefined
        ? { v: command.v, op: 'delete', key: command.key, proposedAtMs: command.proposedAtMs }
        : { v: command.v, op: 'delete', key: command.key, client: stampFields(command.client), proposedAtMs: command.proposedAtMs });
    case 'compact':
      return encodeValue({ v: command.v, op: 'compact', revision: command.revision, proposedAtMs: command.proposedAtMs });
  }
}

function stampFields(stamp: ClientStamp): ClientStamp {
  return { clientId: stamp.clientId, seq: stamp.seq, ackedSeq: stamp.ackedSeq };
}

/** Decode and validate; throws CommandDecodeError (a CodecError) for anything it cannot trust. */
export function decodeCommand(data: Uint8Array): KvCommand {
  let raw: unknown;
  try {
    raw = decodeValue(data);
  } catch (error) {
    throw new CommandDecodeError('BAD_REQUEST', `The command is not decodable: ${(error as Error).message}`);
  }
  if (!isRecord(raw)) throw new CommandDecodeError('BAD_REQUEST', 'The command is not a record.');
  if (raw.v !== COMMAND_FORMAT_VERSION) {
    throw new CommandDecodeError('UNSUPPORTED_COMMAND', `The command format version ${describe(raw.v)} is not supported by this replica (it knows ${COMMAND_FORMAT_VERSION}).`);
  }
  const proposedAtMs = wholeNumber(raw.proposedAtMs, 'proposedAtMs');
  switch (raw.op) {
    case 'put': {
      const key = checkedKey(raw.key);
      if (typeof raw.value !== 'string') throw new CommandDecodeError('BAD_REQUEST', 'The put command has no string value.');
      const client = optionalStamp(raw.client);
      return client === undefined
        ? { v: 1, op: 'put', key, value: raw.value, proposedAtMs }
        : { v: 1, op: 'put', key, value: raw.value, client, proposedAtMs };
    }
    case 'delete': {
      const key = checkedKey(raw.key);
      const client = optionalStamp(raw.client);
      return client === undefined ? { v: 1, op: 'delete', key, proposedAtMs } : { v: 1, op: 'delete', key, client, proposedAtMs };
    }
    case 'compact': {
      const revision = wholeNumber(raw.revision, 'revision');
      if (revision < 1) throw new CommandDecodeError('BAD_REQUEST', 'The compact revision must be at least 1.');
      return { v: 1, op: 'compact', revision, proposedAtMs };
    }
    default:
      throw new CommandDecodeError('UNSUPPORTED_COMMAND', `The command op ${describe(raw.op)} is not supported by this replica.`);
  }
}

type Shape = Record<string, unknown>;

function isRecord(value: unknown): value is Shape {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function wholeNumber(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CommandDecodeError('BAD_REQUEST', `The command field ${field} is not a non-negative integer.`);
  }
  return value;
}

function checkedKey(value: unknown): string {
  if (typeof value !== 'string') throw new CommandDecodeError('BAD_REQUEST', 'The command has no string key.');
  const problem = validateKey(value);
  if (problem !== null) throw new CommandDecodeError('INVALID_KEY', problem.message);
  return value;
}

function optionalStamp(value: unknown): ClientStamp | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new CommandDecodeError('BAD_REQUEST', 'The client stamp is not a record.');
  const clientId = value.clientId;
  if (typeof clientId !== 'string' || clientId.length === 0) throw new CommandDecodeError('BAD_REQUEST', 'The client stamp has no client id.');
  // Sessions are keyed by the id's UTF-8 bytes: ids that are not well-formed Unicode would collide.
  if (validateKey(clientId) !== null) throw new CommandDecodeError('BAD_REQUEST', 'The client id must be well-formed text without control characters.');
  if (Buffer.byteLength(clientId, 'utf8') > MAX_CLIENT_ID_BYTES) throw new CommandDecodeError('BAD_REQUEST', `The client id is longer than ${MAX_CLIENT_ID_BYTES} bytes.`);
  const seq = wholeNumber(value.seq, 'client.seq');
  const ackedSeq = wholeNumber(value.ackedSeq, 'client.ackedSeq');
  if (seq < 1) throw new CommandDecodeError('BAD_REQUEST', 'The client sequence number must be at least 1.');
  // A client cannot have been answered for the write it is sending now.
  if (ackedSeq >= seq) throw new CommandDecodeError('BAD_REQUEST', `The client stamp acknowledges ${ackedSeq}, not below its own sequence number ${seq}.`);
  return { clientId, seq, ackedSeq };
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return value === undefined ? '(missing)' : typeof value;
}
