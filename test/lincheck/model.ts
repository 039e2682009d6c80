// The sequential specification of one key: a register that may be absent.
//
// The search (wgl.ts) memoizes on model states, so it works on small integer codes rather than
// strings: code 0 is "absent", every other code stands for one distinct string value. Values
// are interned per key; a read of a value nobody wrote still gets a code, it just never matches.

import type { KvOperation } from './history.js';

/** The state code for "key absent" (also the initial state). */
export const ABSENT = 0;
/** Returned by stepRegister when the operation cannot happen in the given state. */
export const ILLEGAL = -1;

const PUT = 0;
const GET = 1;
const DELETE = 2;

/** Delete whose reply we never saw: it removes the value, whatever was there. */
const DELETE_UNCONSTRAINED = -1;

/** An operation compiled for the search: all comparisons become integer comparisons. */
export interface RegisterOp {
  readonly kind: typeof PUT | typeof GET | typeof DELETE;
  /** put: code written. get: code read. delete: 1 = deleted, 0 = was absent, -1 = unconstrained. */
  readonly arg: number;
}

/** Interns the values of one key so states can be compared and hashed as integers. */
export class ValueTable {
  private readonly codes = new Map<string, number>();
  private readonly values: string[] = [];

  encode(value: string | null): number {
    if (value === null) return ABSENT;
    let code = this.codes.get(value);
    if (code === undefined) {
      this.values.push(value);
      code = this.values.length; // codes start at 1; 0 is ABSENT
      this.codes.set(value, code);
    }
    return code;
  }

  decode(code: number): string | null {
    return code === ABSENT ? null : (this.values[code - 1] ?? null);
  }
}

export function compileOperation(op: KvOperation, table: ValueTable): RegisterOp {
  switch (op.kind) {
    case 'put':
      return { kind: PUT, arg: table.encode(op.value ?? '') };
    case 'get':
      // Unknown reads are dropped before the search (check.ts), so output is always known here.
      return { kind: GET, arg: table.encode(op.output ?? null) };
    case 'delete':
      if (op.status !== 'ok' || op.deleted === undefined) return { kind: DELETE, arg: DELETE_UNCONSTRAINED };
      return { kind: DELETE, arg: op.deleted ? 1 : 0 };
  }
}

/** The register's transition function: the next state, or ILLEGAL. */
export function stepRegister(state: number, op: RegisterOp): number {
  switch (op.kind) {
    case PUT:
      return op.arg;
    case GET:
      return op.arg === state ? state : ILLEGAL;
    case DELETE:
      if (op.arg === DELETE_UNCONSTRAINED) return ABSENT;
      return (op.arg === 1) === (state !== ABSENT) ? ABSENT : ILLEGAL;
  }
}

/**
 * A blind write is legal in every state and leaves a state that does not depend on the old one:
 * a put, or a delete whose reply was lost. The search uses this to skip useless placements of
 * operations with unknown outcome (see wgl.ts).
 */
export function isBlindWrite(op: RegisterOp): boolean {
  return op.kind === PUT || (op.kind === DELETE && op.arg === DELETE_UNCONSTRAINED);
}

/**
 * The same specification over readable values, for explanations: why `op` cannot take effect
 * when the register holds `state`, or null when it can.
 */
export function whyIllegal(state: string | null, op: KvOperation): string | null {
  const held = state === null ? 'the key was absent' : `the key held ${JSON.stringify(state)}`;
  if (op.kind === 'get' && op.status === 'ok' && op.output !== undefined && op.output !== state) {
    const read = op.output === null ? 'absent' : JSON.stringify(op.output);
    return `get read ${read} but ${held}`;
  }
  if (op.kind === 'delete' && op.status === 'ok' && op.deleted !== undefined && op.deleted !== (state !== null)) {
    return `delete reported deleted=${String(op.deleted)} but ${held}`;
  }
  return null;
}
