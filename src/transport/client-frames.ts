// Payloads of 'client' connections: request `{ id, body }`, response `{ id, ok: true, body }` or
// `{ id, ok: false, error }`. Ids let many requests be in flight on one connection and answered in
// any order; the body is any MessagePack value and is the business of the handler.

import { CodecError } from '../codec/raft-codec.js';

export interface ClientRequestFrame {
  readonly id: number;
  readonly body: unknown;
}

export type ClientResponseFrame =
  | { readonly id: number; readonly ok: true; readonly body: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requestId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new CodecError('client frame has no valid id');
  return value;
}

export function checkClientRequest(value: unknown): ClientRequestFrame {
  if (!isRecord(value)) throw new CodecError('client request is not a record');
  return { id: requestId(value.id), body: value.body };
}

export function checkClientResponse(value: unknown): ClientResponseFrame {
  if (!isRecord(value)) throw new CodecError('client response is not a record');
  const id = requestId(value.id);
  if (value.ok === true) return { id, ok: true, body: value.body };
  if (value.ok === false) return { id, ok: false, error: typeof value.error === 'string' ? value.error : 'no error message given' };
  throw new CodecError('client response has no ok field');
}
