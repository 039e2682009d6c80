// The receiving end of a snapshot: an async iterable of chunks handed to `onSnapshot`. The socket
// may deliver faster than the consumer (a disk, a database) can take, so the stream holds at most
// about `highWaterBytes` and asks its owner to stop reading the socket meanwhile; TCP flow control
// then carries the backpressure to the sender, which waits for 'drain'. If the connection breaks
// before the end frame, the consumer's next read throws, so a half-received snapshot can never be
// mistaken for a whole one.

export const DEFAULT_SNAPSHOT_HIGH_WATER_BYTES = 1024 * 1024;

export interface SnapshotStreamHooks {
  /** The consumer is behind: stop reading the socket. */
  readonly pause: () => void;
  /** The consumer caught up: read again. */
  readonly resume: () => void;
}

export class SnapshotStreamError extends Error {
  override readonly name = 'SnapshotStreamError';
}

type Waiter = { resolve: (result: IteratorResult<Uint8Array>) => void; reject: (error: Error) => void };

export class SnapshotChunkStream implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private head = 0;
  private buffered = 0;
  private paused = false;
  private ended = false;
  private failure: Error | null = null;
  /** The consumer stopped early (break or return): further chunks are discarded. */
  private abandoned = false;
  private iterated = false;
  private waiter: Waiter | null = null;
  private readonly lowWaterBytes: number;

  constructor(private readonly hooks: SnapshotStreamHooks, private readonly highWaterBytes: number = DEFAULT_SNAPSHOT_HIGH_WATER_BYTES) {
    this.lowWaterBytes = Math.floor(highWaterBytes / 2);
  }

  /** Bytes received and not yet taken by the consumer. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True once every chunk up to the end frame has arrived. */
  get complete(): boolean {
    return this.ended;
  }

  get consumerAbandoned(): boolean {
    return this.abandoned;
  }

  push(chunk: Uint8Array): void {
    if (this.ended || this.failure !== null || this.abandoned) return;
    if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve({ value: chunk, done: false });
      return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (!this.paused && this.buffered >= this.highWaterBytes) {
      this.paused = true;
      this.hooks.pause();
    }
  }

  /** The end frame arrived: the consumer sees `done` after the buffered chunks. */
  end(): void {
    if (this.ended || this.failure !== null) return;
    this.ended = true;
    if (this.waiter !== null && this.chunks.length === this.head) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve({ value: undefined, done: true });
    }
  }

  /** The stream broke: the consumer's next read throws `error`; buffered chunks are dropped,
   * since an incomplete snapshot is worthless. */
  fail(error: Error): void {
    if (this.ended || this.failure !== null) return;
    this.failure = error;
    this.dropBuffered();
    if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.reject(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new SnapshotStreamError('a snapshot stream can be read only once');
    this.iterated = true;
    return {
      next: () => this.next(),
      return: async () => {
        this.abandon();
        return { value: undefined, done: true };
      },
    };
  }

  private next(): Promise<IteratorResult<Uint8Array>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.abandoned) return Promise.resolve({ value: undefined, done: true });
    if (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head];
      this.head += 1;
      this.buffered -= chunk.byteLength;
      this.compact();
      if (this.paused && this.buffered <= this.lowWaterBytes) {
        this.paused = false;
        this.hooks.resume();
      }
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter !== null) return Promise.reject(new SnapshotStreamError('next() called again before the previous read settled'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private abandon(): void {
    if (this.abandoned) return;
    this.abandoned = true;
    this.dropBuffered();
  }

  private dropBuffered(): void {
    this.chunks.length = 0;
    this.head = 0;
    this.buffered = 0;
    if (this.paused) {
      this.paused = false;
      this.hooks.resume();
    }
  }

  private compact(): void {
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 64) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}
