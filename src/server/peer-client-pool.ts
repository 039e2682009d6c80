// Client connections to other nodes' peer ports, one per address, reused across requests. Used by
// followers to forward writes to the leader and by the gateway to reach the cluster.

import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { PeerClient } from '../transport/peer-transport.js';
import { changesState, parseRpcResponse, type RpcRequest, type RpcResponse } from './rpc-protocol.js';

export class PeerClientPool {
  private readonly clients = new Map<string, Promise<PeerClient>>();
  private closed = false;

  constructor(private readonly clusterId: string, private readonly logger: Logger) {}

  /**
   * Send one request. A failure to connect means the request was never sent: it rejects with
   * NO_LEADER (safe to retry). A failure after sending rejects with OUTCOME_UNKNOWN.
   */
  async request(address: string, request: RpcRequest, timeoutMs: number): Promise<RpcResponse> {
    if (this.closed) throw new ApiError('SHUTTING_DOWN');
    let client: PeerClient;
    try {
      client = await this.withinTime(this.connection(address), timeoutMs);
      if (client.closed) {
        // The peer closed it since (a restart, say): nothing was sent on it; dial again.
        this.drop(address, client);
        client = await this.withinTime(this.connection(address), timeoutMs);
      }
    } catch (error) {
      // A failed dial removes itself from the pool; one still under way stays for the next request.
      throw new ApiError('NO_LEADER', `Could not reach ${address}: ${(error as Error).message}; the request was not sent.`);
    }
    let body: unknown;
    try {
      body = await client.request(request, timeoutMs);
    } catch (error) {
      this.drop(address, client);
      throw new ApiError(changesState(request) ? 'OUTCOME_UNKNOWN' : 'NO_LEADER', `No answer from ${address}: ${(error as Error).message}`);
    }
    const response = parseRpcResponse(body);
    if (response === null) {
      this.logger.warn('malformed answer from a node', { address });
      this.drop(address, client);
      throw new ApiError(changesState(request) ? 'OUTCOME_UNKNOWN' : 'NO_LEADER', `Malformed answer from ${address}.`);
    }
    return response;
  }

  /** A connection still being dialed must not hold a request past its own deadline. */
  private withinTime(connecting: Promise<PeerClient>, timeoutMs: number): Promise<PeerClient> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), Math.max(1, timeoutMs));
    });
    return Promise.race([connecting, expired]).finally(() => clearTimeout(timer));
  }

  private connection(address: string): Promise<PeerClient> {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = PeerClient.connect(address, this.clusterId);
      this.clients.set(address, client);
      client.catch(() => this.clients.delete(address));
    }
    return client;
  }

  private drop(address: string, client: PeerClient): void {
    client.close();
    this.clients.delete(address);
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) client.then((c) => c.close(), () => {});
    this.clients.clear();
  }
}
