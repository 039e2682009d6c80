// What a key and a value may be. The API checks these before proposing (bad input never reaches the
// log); the state machine checks keys again when it decodes a command, because the log is data from
// a peer and a replica must never store what no client could have written.

/** etcd's default request limit is 1.5 MiB; ours is a round 1 MiB of UTF-8 value. */
export const DEFAULT_MAX_VALUE_BYTES = 1_048_576;

/** Keys are indexed with a separator byte and a revision after them; 1 KiB keeps them small. */
export const MAX_KEY_BYTES = 1_024;

export interface KeyProblem {
  readonly code: 'INVALID_KEY';
  readonly message: string;
}

export interface ValueProblem {
  readonly code: 'INVALID_JSON' | 'BAD_REQUEST' | 'TOO_LARGE';
  readonly message: string;
}

/** C0 controls, DEL and C1 controls: invisible in logs and URLs, and U+0000 ends C strings. */
function isControl(codeUnit: number): boolean {
  return codeUnit <= 0x1f || (codeUnit >= 0x7f && codeUnit <= 0x9f);
}

/**
 * One pass over the UTF-16 code units: finds lone surrogates and control characters and counts the
 * UTF-8 bytes, stopping early once the key is known to be too long.
 */
export function validateKey(key: string): KeyProblem | null {
  if (typeof key !== 'string') return { code: 'INVALID_KEY', message: 'The key must be a string.' };
  if (key.length === 0) return { code: 'INVALID_KEY', message: 'The key must not be empty.' };
  let utf8Bytes = 0;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit < 0x80) {
      if (isControl(unit)) return { code: 'INVALID_KEY', message: `The key contains the control character U+${hex4(unit)} at position ${i}.` };
      utf8Bytes += 1;
    } else if (unit < 0x800) {
      if (isControl(unit)) return { code: 'INVALID_KEY', message: `The key contains the control character U+${hex4(unit)} at position ${i}.` };
      utf8Bytes += 2;
    } else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = i + 1 < key.length ? key.charCodeAt(i + 1) : 0;
      if (next < 0xdc00 || next > 0xdfff) return { code: 'INVALID_KEY', message: `The key is not valid Unicode: a lone surrogate at position ${i}.` };
      utf8Bytes += 4;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return { code: 'INVALID_KEY', message: `The key is not valid Unicode: a lone surrogate at position ${i}.` };
    } else {
      utf8Bytes += 3;
    }
    if (utf8Bytes > MAX_KEY_BYTES) return { code: 'INVALID_KEY', message: `The key is longer than ${MAX_KEY_BYTES} bytes of UTF-8.` };
  }
  return null;
}

/** Values are opaque text: any string of well-formed Unicode up to the byte limit. */
export function validateValue(value: unknown, maxValueBytes: number = DEFAULT_MAX_VALUE_BYTES): ValueProblem | null {
  if (value === undefined || value === null) return { code: 'BAD_REQUEST', message: 'A value is required.' };
  if (typeof value !== 'string') return { code: 'BAD_REQUEST', message: `The value must be a string, not ${Array.isArray(value) ? 'an array' : typeof value}.` };
  // Checked before well-formedness so that an oversized body costs one native byte count only.
  const utf8Bytes = Buffer.byteLength(value, 'utf8');
  if (utf8Bytes > maxValueBytes) return { code: 'TOO_LARGE', message: `The value is ${utf8Bytes} bytes of UTF-8; the limit is ${maxValueBytes}.` };
  // JSON may carry "\ud800", which has no UTF-8 form: stored, it would come back as U+FFFD.
  if (!isWellFormed(value)) return { code: 'INVALID_JSON', message: 'The value is not valid Unicode text (it contains a lone surrogate).' };
  return null;
}

const nativeIsWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

function isWellFormed(text: string): boolean {
  if (nativeIsWellFormed !== undefined) return nativeIsWellFormed.call(text);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (next < 0xdc00 || next > 0xdfff) return false;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return false;
    }
  }
  return true;
}

function hex4(unit: number): string {
  return unit.toString(16).toUpperCase().padStart(4, '0');
}
