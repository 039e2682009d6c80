// One HTTP exchange on loopback for the suite's control traffic (health checks, leader lookups, the
// first write after a restart). No keep-alive, so a killed process cannot strand a socket; the load
// itself goes through the load generator's pools, never through here.

import { request } from 'node:http';
import { HOST, monotonicMs, sleep } from './processes.js';

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

export function httpOnce(port: number, method: string, path: string, body?: string, timeoutMs = 2000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = request({ host: HOST, port, method, path, timeout: timeoutMs, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The parsed JSON answer, or undefined when the request failed or the body is not JSON. */
export async function jsonOnce(port: number, method: string, path: string, body?: string, timeoutMs = 2000): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const answer = await httpOnce(port, method, path, body, timeoutMs);
    const parsed: unknown = JSON.parse(answer.text);
    return typeof parsed === 'object' && parsed !== null ? { status: answer.status, body: parsed as Record<string, unknown> } : undefined;
  } catch {
    return undefined;
  }
}

/** Thrown by a probe when waiting longer is pointless (the processes are gone). */
export class FatalWaitError extends Error {}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes; throws then. A
 * probe's FatalWaitError ends the wait at once; any other error counts as "not yet". */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = monotonicMs() + timeoutMs;
  for (;;) {
    const value = await probe().catch((error: unknown) => {
      if (error instanceof FatalWaitError) throw new Error(`gave up waiting for ${what}: ${error.message}`);
      return undefined;
    });
    if (value !== undefined) return value;
    if (monotonicMs() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
