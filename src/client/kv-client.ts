// The TypeScript client of the store's REST API (used by kvctl, tests and benchmarks). It talks to
// any node or gateway; writes carry a client id and sequence number so that its retries after a
// failover are applied once; a 503 (definitely not proposed) is retried on the next endpoint.

import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Agent, request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { MemberChangeOutcome, MembersView, NewMember, TransferOutcome } from '../api/backend.js';
import { isErrorCode, type ErrorCode } from '../common/errors.js';

export type { MemberChangeOutcome, MemberInfo, MembersView, NewMember, TransferOutcome } from '../api/backend.js';

export interface KvClientOptions {
  /** host:port or http://host:port of nodes or gateways. */
  readonly endpoints: readonly string[];
  /** Give up on a request after this long, across retries. */
  readonly timeoutMs?: number;
  /** Send exactly-once stamps with writes (default true). */
  readonly exactlyOnce?: boolean;
  readonly maxSockets?: number;
}

export interface KeyValueAnswer {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly revision: number;
}

/** An error answer from the store, with its stable code. */
export class KvError extends Error {
  override readonly name = 'KvError';
  constructor(readonly code: ErrorCode | 'NETWORK', message: string, readonly status: number) {
    super(message);
  }
}

interface RawAnswer {
  readonly status: number;
  readonly body: unknown;
}

export class KvClient {
  private readonly endpoints: { host: string; port: number }[];
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly clientId = `cli-${randomUUID()}`;
  private nextSeq = 1;
  private readonly inFlight = new Set<number>();
  private current = 0;

  constructor(private readonly options: KvClientOptions) {
    if (options.endpoints.length === 0) throw new Error('KvClient needs at least one endpoint');
    this.endpoints = options.endpoints.map(parseEndpoint);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 256 });
  }

  async put(key: string, value: string): Promise<KeyValueAnswer> {
    return (await this.write('PUT', key, JSON.stringify({ value }))) as KeyValueAnswer;
  }

  /** true when the key existed and was deleted, false when it was absent. */
  async delete(key: string): Promise<boolean> {
    try {
      await this.write('DELETE', key, undefined);
      return true;
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return false;
      throw error;
    }
  }

  /** The key's value and metadata, or null when absent. */
  async get(key: string, options: { consistency?: 'linearizable' | 'stale'; revision?: number } = {}): Promise<KeyValueAnswer | null> {
    const query = new URLSearchParams();
    if (options.consistency === 'stale') query.set('consistency', 'stale');
    if (options.revision !== undefined) query.set('revision', String(options.revision));
    const suffix = query.size > 0 ? `?${query}` : '';
    try {
      return (await this.send('GET', `/kv/${encodeURIComponent(key)}${suffix}`, undefined, {})) as KeyValueAnswer;
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return null;
      throw error;
    }
  }

  async health(): Promise<Record<string, unknown>> {
    return (await this.send('GET', '/health', undefined, {}, false)) as Record<string, unknown>;
  }

  async clusterStatus(): Promise<unknown> {
    return this.send('GET', '/cluster/status', undefined, {});
  }

  // ---- Cluster administration (a follower forwards these to the leader) ------------------------

  async members(): Promise<MembersView> {
    return (await this.send('GET', '/cluster/members', undefined, {})) as MembersView;
  }

  /** Add a learner; the leader promotes it once it has caught up (unless AUTO_PROMOTE=false). */
  async addMember(member: NewMember, options: { force?: boolean } = {}): Promise<MemberChangeOutcome> {
    return (await this.send('POST', `/cluster/members${forceQuery(options)}`, JSON.stringify(member), {})) as MemberChangeOutcome;
  }

  async removeMember(id: number, options: { force?: boolean } = {}): Promise<MemberChangeOutcome> {
    return (await this.send('DELETE', `/cluster/members/${id}${forceQuery(options)}`, undefined, {})) as MemberChangeOutcome;
  }

  async promoteMember(id: number, options: { force?: boolean } = {}): Promise<MemberChangeOutcome> {
    return (await this.send('POST', `/cluster/members/${id}/promote${forceQuery(options)}`, undefined, {})) as MemberChangeOutcome;
  }

  /** To `id`, or to the most up-to-date voter when omitted. */
  async transferLeader(id?: number): Promise<TransferOutcome> {
    return (await this.send('POST', '/cluster/leader', id === undefined ? '' : JSON.stringify({ id }), {})) as TransferOutcome;
  }

  /** Streams a backup (GET /cluster/snapshot) into `path`; resolves with its size in bytes. */
  async saveSnapshot(path: string): Promise<number> {
    const endpoint = this.endpoints[this.current % this.endpoints.length];
    return new Promise<number>((resolve, reject) => {
      const req = request({ host: endpoint.host, port: endpoint.port, method: 'GET', path: '/cluster/snapshot', agent: this.agent, timeout: this.timeoutMs }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            let body: { code?: unknown; error?: unknown } = {};
            try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body; } catch { /* not JSON */ }
            reject(new KvError(isErrorCode(body.code) ? body.code : 'INTERNAL', typeof body.error === 'string' ? body.error : `HTTP ${res.statusCode}`, res.statusCode ?? 0));
          });
          return;
        }
        let bytes = 0;
        res.on('data', (chunk: Buffer) => { bytes += chunk.length; });
        pipeline(res, createWriteStream(path)).then(() => resolve(bytes), reject);
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (error) => reject(new KvError('NETWORK', `${endpoint.host}:${endpoint.port}: ${error.message}`, 0)));
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private async write(method: 'PUT' | 'DELETE', key: string, body: string | undefined): Promise<unknown> {
    const headers: Record<string, string> = {};
    let seq = 0;
    if (this.options.exactlyOnce !== false) {
      seq = this.nextSeq++;
      const oldest = this.inFlight.size > 0 ? Math.min(...this.inFlight) : seq;
      this.inFlight.add(seq);
      headers['x-client-id'] = this.clientId;
      headers['x-client-seq'] = String(seq);
      headers['x-client-acked-seq'] = String(oldest - 1);
    }
    try {
      return await this.send(method, `/kv/${encodeURIComponent(key)}`, body, headers, true, seq > 0);
    } finally {
      this.inFlight.delete(seq);
    }
  }

  /** Send, retrying on the next endpoint while the answer says it is safe to. */
  private async send(method: string, path: string, body: string | undefined, headers: Record<string, string>, retry = true, stamped = false): Promise<unknown> {
    const deadline = Date.now() + this.timeoutMs;
    let last: KvError | null = null;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const endpoint = this.endpoints[this.current % this.endpoints.length];
      let answer: RawAnswer;
      try {
        answer = await this.exchange(endpoint, method, path, body, headers, deadline - Date.now());
      } catch (error) {
        last = new KvError('NETWORK', `${endpoint.host}:${endpoint.port}: ${(error as Error).message}`, 0);
        // A write whose connection broke may have been proposed: only a stamped one may be resent.
        if (!retry || (method !== 'GET' && !stamped)) throw last;
        this.current++;
        await sleep(Math.min(50 * (attempt + 1), 500));
        continue;
      }
      if (answer.status >= 200 && answer.status < 300) return answer.body;
      const code = isErrorCode((answer.body as { code?: unknown })?.code) ? (answer.body as { code: ErrorCode }).code : 'INTERNAL';
      const message = typeof (answer.body as { error?: unknown })?.error === 'string' ? (answer.body as { error: string }).error : `HTTP ${answer.status}`;
      last = new KvError(code, message, answer.status);
      // 503 means not done, so safe to retry, except a failed leadership transfer: its caller decides.
      const safeToRetry = (answer.status === 503 && code !== 'TRANSFER_FAILED') || answer.status === 429 || (answer.status === 504 && (method === 'GET' || stamped));
      if (!retry || !safeToRetry) throw last;
      if (answer.status === 503) this.current++;
      await sleep(Math.min(50 * (attempt + 1), 500));
    }
    throw last ?? new KvError('NETWORK', 'timed out', 0);
  }

  private exchange(endpoint: { host: string; port: number }, method: string, path: string, body: string | undefined, headers: Record<string, string>, timeoutMs: number): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: endpoint.host, port: endpoint.port, method, path, agent: this.agent, timeout: Math.max(1, timeoutMs),
        headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try { parsed = text.length > 0 ? JSON.parse(text) : null; } catch { parsed = { error: text }; }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}

function forceQuery(options: { force?: boolean }): string {
  return options.force === true ? '?force=true' : '';
}

function parseEndpoint(endpoint: string): { host: string; port: number } {
  const url = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
