// Strict text for MessagePack: msgpackr decodes a string that is not valid UTF-8 without complaint,
// turning the bad bytes into U+FFFD (or, on its short-string path, into some other character), so a
// key or value sent with garbage bytes would be stored as a different key or value. This module walks
// the encoded bytes once, checks every string against the UTF-8 rules (no overlong forms, no
// surrogates, nothing past U+10FFFF, no truncated sequences), and says where the first bad one is.
//
// The walk needs no stack: it only counts the values still to visit (a container adds its children),
// and skips binary and number payloads by their length, so its cost is one step per value plus a
// native UTF-8 check per string holding a non-ASCII byte.

import { isUtf8 } from 'node:buffer';

/** The bytes do not follow the MessagePack layout this walk knows (see `skipExtension`). */
export class MalformedPackError extends Error {
  override readonly name = 'MalformedPackError';
}

/**
 * Extension types whose payload holds no string: 0 is `undefined` (msgpackr writes it for undefined
 * fields), -1 is a timestamp, 0x42 a BigInt. msgpackr's other extensions (Error, RegExp, Set, typed
 * arrays, structured-clone references, bundled strings) read further values or strings out of the
 * stream; our encoder never writes them, so they are refused rather than modelled.
 */
const PLAIN_EXTENSIONS: ReadonlySet<number> = new Set([0x00, 0xff, 0x42]);

/** Strings up to this long are checked byte by byte in JS (cheaper than a native call for
 * short ASCII); longer ones, and any holding a non-ASCII byte, by the native check. */
const JS_CHECK_MAX_BYTES = 256;

function isValidText(bytes: Uint8Array, start: number, length: number): boolean {
  const stop = start + length;
  if (length <= JS_CHECK_MAX_BYTES) {
    let i = start;
    while (i < stop && bytes[i] < 0x80) i++;
    if (i === stop) return true;
  }
  return isUtf8(bytes.subarray(start, stop));
}

function uint16(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 8) | bytes[at + 1];
}

function uint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) >>> 0) + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
}

/**
 * The offset of the first string in `bytes` (one MessagePack value) that is not valid UTF-8, or -1
 * when every string is valid. Throws MalformedPackError when the layout is not one it can walk.
 */
export function findInvalidText(bytes: Uint8Array): number {
  const end = bytes.byteLength;
  let position = 0;
  let remaining = 1;
  while (remaining > 0) {
    remaining -= 1;
    if (position >= end) throw new MalformedPackError(`truncated at byte ${position}`);
    const at = position;
    const type = bytes[position++];
    if (type <= 0x7f || type >= 0xe0) continue; // fixint
    if (type <= 0x8f) {
      remaining += 2 * (type & 0x0f); // fixmap
      continue;
    }
    if (type <= 0x9f) {
      remaining += type & 0x0f; // fixarray
      continue;
    }
    // Headers are read before their length is checked; a read past the end yields undefined, and
    // the check below (position > end) catches it before any payload is looked at.
    let stringBytes = -1;
    let skip = 0;
    if (type <= 0xbf) {
      stringBytes = type & 0x1f; // fixstr
    } else {
      switch (type) {
        case 0xc0: case 0xc2: case 0xc3: continue; // nil, false, true
        case 0xc4: skip = bytes[position]; position += 1; break; // bin 8
        case 0xc5: skip = uint16(bytes, position); position += 2; break;
        case 0xc6: skip = uint32(bytes, position); position += 4; break;
        case 0xc7: skip = bytes[position]; checkExtension(bytes[position + 1], at); position += 2; break; // ext 8
        case 0xc8: skip = uint16(bytes, position); checkExtension(bytes[position + 2], at); position += 3; break;
        case 0xc9: skip = uint32(bytes, position); checkExtension(bytes[position + 4], at); position += 5; break;
        case 0xca: skip = 4; break; // float 32
        case 0xcb: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break; // uint 8, int 8
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: // fixext 1, 2, 4, 8, 16
          checkExtension(bytes[position], at);
          skip = 1 + (1 << (type - 0xd4));
          break;
        case 0xd9: stringBytes = bytes[position]; position += 1; break; // str 8
        case 0xda: stringBytes = uint16(bytes, position); position += 2; break;
        case 0xdb: stringBytes = uint32(bytes, position); position += 4; break;
        case 0xdc: remaining += uint16(bytes, position); position += 2; break; // array 16
        case 0xdd: remaining += uint32(bytes, position); position += 4; break;
        case 0xde: remaining += 2 * uint16(bytes, position); position += 2; break; // map 16
        case 0xdf: remaining += 2 * uint32(bytes, position); position += 4; break;
        default: throw new MalformedPackError(`byte 0x${type.toString(16)} at ${at} is not a MessagePack type`); // 0xc1
      }
    }
    const payload = stringBytes >= 0 ? stringBytes : skip;
    if (position > end || position + payload > end) throw new MalformedPackError(`value at byte ${at} runs past the end`);
    if (stringBytes >= 0 && !isValidText(bytes, position, stringBytes)) return at;
    position += payload;
  }
  if (position !== end) throw new MalformedPackError(`${end - position} bytes after the value`);
  return -1;
}

function checkExtension(extensionType: number | undefined, at: number): void {
  // undefined: the header itself is cut off; the length check in the caller reports that.
  if (extensionType !== undefined && !PLAIN_EXTENSIONS.has(extensionType)) throw new MalformedPackError(`extension type ${extensionType} at byte ${at} is not accepted`);
}
