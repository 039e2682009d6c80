// The REST API as a function from a buffered request to a response, with no sockets in sight, so
// every route, status and error code is tested in-process. http-server.ts puts it on the network.

import { ApiError, type ErrorBody } from '../common/errors.js';
import type { ClientStamp, KvBackend, ReadConsistency, StreamBody } from './backend.js';

export interface ApiRequest {
  readonly method: string;
  /** The raw request target, e.g. "/kv/a%2Fb?consistency=stale". */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Uint8Array;
}

export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** When set, the body is streamed from it instead of serialised as JSON. */
  readonly stream?: StreamBody;
}

/** Bytes a cluster administration request body may carry. */
const MAX_ADMIN_BODY_BYTES = 4096;

/** Bytes a PUT body may carry beyond the value itself (JSON quoting and escapes, the field name). */
export function maxBodyBytes(maxValueBytes: number): number {
  return maxValueBytes * 2 + 1024;
}

export async function routeApiRequest(backend: KvBackend, request: ApiRequest): Promise<ApiResponse> {
  try {
    return await dispatch(backend, request);
  } catch (error) {
    return errorResponse(error);
  }
}

export function errorResponse(error: unknown): ApiResponse {
  const apiError = error instanceof ApiError ? error : new ApiError('INTERNAL');
  const body: ErrorBody = apiError.body();
  const headers: Record<string, string> = {};
  if (apiError.status === 503 || apiError.status === 429) headers['retry-after'] = String(apiError.retryAfterSeconds ?? 1);
  return { status: apiError.status, body, headers };
}

async function dispatch(backend: KvBackend, request: ApiRequest): Promise<ApiResponse> {
  const { path, query } = splitTarget(request.url);
  if (path === '/health') {
    requireMethod(request.method, ['GET', 'HEAD']);
    const report = await backend.health();
    return { status: report.healthy ? 200 : 503, body: report.body };
  }
  if (path === '/cluster/status') {
    requireMethod(request.method, ['GET', 'HEAD']);
    return { status: 200, body: await backend.clusterStatus() };
  }
  if (path === '/cluster/members' || path.startsWith('/cluster/members/') || path === '/cluster/leader' || path === '/cluster/snapshot') {
    return clusterRoute(backend, request, path, query);
  }
  if (path.startsWith('/kv/') || path === '/kv') {
    const key = decodeKey(path.slice('/kv/'.length));
    switch (request.method) {
      case 'GET':
      case 'HEAD': return getKey(backend, key, query);
      case 'PUT': return putKey(backend, key, request);
      case 'DELETE': return deleteKey(backend, key, request);
      default: throw new ApiError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on /kv/{key}; use GET, PUT or DELETE.`);
    }
  }
  throw new ApiError('NOT_FOUND', `No route for ${request.method} ${path}.`);
}

/**
 *   GET    /cluster/members                  the members (the leader's view when it answers)
 *   POST   /cluster/members                  {"id", "peerAddr", "httpAddr"}: add a learner
 *   DELETE /cluster/members/{id}             remove a member (the leader hands over first)
 *   POST   /cluster/members/{id}/promote     make a learner a voter
 *   POST   /cluster/leader                   {"id": N} or no body: transfer leadership
 *   GET    /cluster/snapshot                 a checksummed backup, streamed
 * `?force=true` (or "force": true in the body) overrides the live-quorum and catch-up checks.
 */
async function clusterRoute(backend: KvBackend, request: ApiRequest, path: string, query: URLSearchParams): Promise<ApiResponse> {
  if (path === '/cluster/snapshot') {
    requireMethod(request.method, ['GET']);
    const stream = await backend.snapshot();
    return { status: 200, body: null, stream, headers: { 'content-disposition': `attachment; filename="${stream.fileName}"` } };
  }
  if (path === '/cluster/leader') {
    requireMethod(request.method, ['POST']);
    const body = adminBody(request);
    const id = body.id === undefined || body.id === null ? null : memberId(body.id);
    return { status: 200, body: await backend.transferLeader(id) };
  }
  if (path === '/cluster/members') {
    requireMethod(request.method, ['GET', 'HEAD', 'POST']);
    if (request.method !== 'POST') return { status: 200, body: await backend.members() };
    const body = adminBody(request);
    if (typeof body.peerAddr !== 'string' || (body.httpAddr !== undefined && typeof body.httpAddr !== 'string')) {
      throw new ApiError('BAD_REQUEST', 'The body must be {"id": N, "peerAddr": "host:port", "httpAddr": "host:port"}.');
    }
    const member = { id: memberId(body.id), peerAddr: body.peerAddr, httpAddr: (body.httpAddr as string | undefined) ?? '' };
    return { status: 200, body: await backend.addMember(member, { force: forced(query, body) }) };
  }
  const match = /^\/cluster\/members\/([^/]+)(\/promote)?$/.exec(path);
  if (match === null) throw new ApiError('NOT_FOUND', `No route for ${request.method} ${path}.`);
  const id = memberId(/^\d{1,7}$/.test(match[1]) ? Number(match[1]) : NaN);
  if (match[2] !== undefined) {
    requireMethod(request.method, ['POST']);
    return { status: 200, body: await backend.promoteMember(id, { force: forced(query, adminBody(request)) }) };
  }
  requireMethod(request.method, ['DELETE']);
  return { status: 200, body: await backend.removeMember(id, { force: forced(query, adminBody(request)) }) };
}

/** An optional JSON object body (empty means {}). */
function adminBody(request: ApiRequest): Record<string, unknown> {
  if (request.body.byteLength === 0) return {};
  if (request.body.byteLength > MAX_ADMIN_BODY_BYTES) throw new ApiError('TOO_LARGE', 'The body is over the size limit.');
  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(request.body);
    if (text.trim() === '') return {};
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError('INVALID_JSON', 'The body must be a JSON object.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError('BAD_REQUEST', 'The body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

function memberId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > 1_000_000) {
    throw new ApiError('BAD_REQUEST', 'A member id is an integer from 1 to 1000000.');
  }
  return value;
}

function forced(query: URLSearchParams, body: Record<string, unknown>): boolean {
  const flag = query.get('force');
  if (flag !== null && !['true', 'false', '1', '0', ''].includes(flag)) throw new ApiError('BAD_REQUEST', 'force must be true or false.');
  return flag === 'true' || flag === '1' || flag === '' || body.force === true;
}

function requireMethod(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) throw new ApiError('METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${allowed.join(' or ')}.`);
}

function splitTarget(url: string): { path: string; query: URLSearchParams } {
  const at = url.indexOf('?');
  const path = at < 0 ? url : url.slice(0, at);
  return { path, query: new URLSearchParams(at < 0 ? '' : url.slice(at + 1)) };
}

/** The key is the path after /kv/, percent-decoded (so "a/b" and "caf%C3%A9" work). */
function decodeKey(encoded: string): string {
  if (encoded === '') throw new ApiError('INVALID_KEY', 'The key is empty.');
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new ApiError('INVALID_KEY', 'The key is not valid percent-encoded UTF-8.');
  }
}

async function getKey(backend: KvBackend, key: string, query: URLSearchParams): Promise<ApiResponse> {
  const consistencyParam = query.get('consistency') ?? 'linearizable';
  if (consistencyParam !== 'linearizable' && consistencyParam !== 'stale') {
    throw new ApiError('BAD_REQUEST', 'consistency must be "linearizable" or "stale".');
  }
  const revisionParam = query.get('revision');
  let revision: number | undefined;
  if (revisionParam !== null) {
    if (!/^[1-9]\d{0,15}$/.test(revisionParam)) throw new ApiError('INVALID_REVISION', 'revision must be a positive integer.');
    revision = Number(revisionParam);
  }
  const record = await backend.get(key, consistencyParam as ReadConsistency, revision);
  if (record === null) throw new ApiError('KEY_NOT_FOUND', `Key "${truncate(key)}" does not exist.`);
  return { status: 200, body: record };
}

async function putKey(backend: KvBackend, key: string, request: ApiRequest): Promise<ApiResponse> {
  if (request.body.byteLength > maxBodyBytes(backend.maxValueBytes)) throw new ApiError('TOO_LARGE', 'The body is over the size limit.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request.body));
  } catch {
    throw new ApiError('INVALID_JSON', 'The body must be JSON like {"value": "..."}.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !('value' in parsed)) {
    throw new ApiError('BAD_REQUEST', 'The body must be a JSON object with a "value" field.');
  }
  const value = (parsed as { value: unknown }).value;
  if (typeof value !== 'string') throw new ApiError('BAD_REQUEST', '"value" must be a string.');
  const record = await backend.put(key, value, clientStamp(request.headers));
  return { status: 200, body: record };
}

async function deleteKey(backend: KvBackend, key: string, request: ApiRequest): Promise<ApiResponse> {
  const outcome = await backend.delete(key, clientStamp(request.headers));
  if (!outcome.deleted) throw new ApiError('KEY_NOT_FOUND', `Key "${truncate(key)}" does not exist.`);
  return { status: 200, body: { key: outcome.key, status: 'deleted', revision: outcome.revision } };
}

function header(headers: ApiRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Optional exactly-once stamp: X-Client-Id, X-Client-Seq and X-Client-Acked-Seq headers. */
function clientStamp(headers: ApiRequest['headers']): ClientStamp | undefined {
  const clientId = header(headers, 'x-client-id');
  if (clientId === undefined) return undefined;
  const seqText = header(headers, 'x-client-seq') ?? '';
  const ackedText = header(headers, 'x-client-acked-seq') ?? '0';
  if (clientId.length === 0 || clientId.length > 128 || !/^\d{1,15}$/.test(seqText) || !/^\d{1,15}$/.test(ackedText)) {
    throw new ApiError('BAD_REQUEST', 'X-Client-Id needs X-Client-Seq (a positive integer) and optionally X-Client-Acked-Seq (below it).');
  }
  const seq = Number(seqText);
  const ackedSeq = Number(ackedText);
  if (seq < 1 || ackedSeq >= seq) throw new ApiError('BAD_REQUEST', 'X-Client-Seq must be positive and above X-Client-Acked-Seq.');
  return { clientId, seq, ackedSeq };
}

function truncate(key: string): string {
  return key.length > 64 ? `${key.slice(0, 64)}...` : key;
}
