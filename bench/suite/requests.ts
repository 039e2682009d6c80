// The same logical operation (put, linearizable get, stale get of key k) as each system's HTTP API
// spells it:
//   ours     PUT /kv/{key} {"value": v}       GET /kv/{key}       GET /kv/{key}?consistency=stale
//   etcd     POST /v3/kv/put {key, value}     POST /v3/kv/range {key}   ... {key, serializable: true}
//            (the v3 JSON gateway: keys and values base64)
//   trivial  ours' shapes, answered by a server that does nothing (the load generator's headroom)
// Everything that can be is built once, so the load generator spends its time on the network.

export type SystemKind = 'ours' | 'etcd' | 'trivial';
export type Operation = 'put' | 'get' | 'stale';

export interface HttpShape {
  readonly method: 'GET' | 'PUT' | 'POST';
  readonly path: string;
  readonly body: string | undefined;
}

export const KEY_PREFIX = 'bench-';

export function keyName(index: number): string {
  return `${KEY_PREFIX}${String(index).padStart(6, '0')}`;
}

/** A printable value of exactly `sizeBytes` ASCII bytes, the same on every run (not one repeated
 * character, so nothing along the way can shortcut it). */
export function valueOfSize(sizeBytes: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let state = 0x2545f491;
  let value = '';
  for (let i = 0; i < sizeBytes; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    value += alphabet[(state >>> 0) % alphabet.length];
  }
  return value;
}

export class RequestShapes {
  private readonly putBodyOurs: string;
  private readonly ourPaths: string[] = [];
  private readonly ourStalePaths: string[] = [];
  private readonly etcdKeys: string[] = [];
  private readonly etcdValue: string;

  constructor(private readonly system: SystemKind, valueBytes: number, keyCount: number) {
    const value = valueOfSize(valueBytes);
    this.putBodyOurs = JSON.stringify({ value });
    this.etcdValue = Buffer.from(value, 'utf8').toString('base64');
    for (let k = 0; k < keyCount; k++) {
      const key = keyName(k);
      if (system === 'etcd') {
        this.etcdKeys.push(Buffer.from(key, 'utf8').toString('base64'));
      } else {
        this.ourPaths.push(`/kv/${key}`);
        this.ourStalePaths.push(`/kv/${key}?consistency=stale`);
      }
    }
  }

  shape(operation: Operation, keyIndex: number): HttpShape {
    if (this.system === 'etcd') {
      const key = this.etcdKeys[keyIndex];
      switch (operation) {
        case 'put': return { method: 'POST', path: '/v3/kv/put', body: `{"key":"${key}","value":"${this.etcdValue}"}` };
        case 'get': return { method: 'POST', path: '/v3/kv/range', body: `{"key":"${key}"}` };
        case 'stale': return { method: 'POST', path: '/v3/kv/range', body: `{"key":"${key}","serializable":true}` };
      }
    }
    switch (operation) {
      case 'put': return { method: 'PUT', path: this.ourPaths[keyIndex], body: this.putBodyOurs };
      case 'get': return { method: 'GET', path: this.ourPaths[keyIndex], body: undefined };
      case 'stale': return { method: 'GET', path: this.ourStalePaths[keyIndex], body: undefined };
    }
  }
}
