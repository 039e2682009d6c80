// A follower's ReadIndex request, or the leader's answer, can be lost on the way (a peer
// connection dropped and redialled, a full send queue). The Raft core sends the request once, so
// without a retry the read waits for its whole deadline and fails with NO_QUORUM although the
// cluster is healthy (seen once in the malformed-input fault test). Like etcd's
// linearizableReadLoop (readIndexRetryTime, 500 ms), reads still without an index are asked again.
// A repeated question is harmless: each answer is a valid read index, and a later one only makes
// the read wait for a later apply.

export const READ_INDEX_RETRY_MS = 500;

export interface RetriableRead {
  /** -1 until the read index is known. */
  readonly index: number;
  /** When the read index was last asked for. */
  askedAtMs: number;
}

/**
 * The contexts of reads to ask again at `nowMs` (no index yet, last asked at least `retryMs`
 * ago); their clocks restart.
 */
export function readsToAskAgain(reads: ReadonlyMap<number, RetriableRead>, nowMs: number, retryMs = READ_INDEX_RETRY_MS): number[] {
  const due: number[] = [];
  for (const [context, read] of reads) {
    if (read.index >= 0 || nowMs - read.askedAtMs < retryMs) continue;
    read.askedAtMs = nowMs;
    due.push(context);
  }
  return due;
}
