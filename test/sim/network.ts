// The simulated network between nodes: every message gets its own random delay (so messages reorder
// freely), and may be lost or duplicated. Links are directed: a partition cuts both directions
// between groups, a one-way cut only one. A message is dropped when its link is cut at send time or
// at delivery time (a packet in flight when the cable is pulled is lost too).

import type { NodeId } from '../../src/raft/types.js';
import { ms, type Micros, type Simulation } from './events.js';
import type { Rng } from './rng.js';

export interface NetworkOptions {
  readonly delayMicrosMin: Micros;
  readonly delayMicrosMax: Micros;
  /** Probability that a message is lost. */
  readonly lossProbability: number;
  /** Probability that a message is delivered twice (each copy with its own delay). */
  readonly duplicateProbability: number;
  /** Probability that a message is held back much longer than usual (deep reordering). */
  readonly delaySpikeProbability: number;
  readonly delaySpikeMicrosMax: Micros;
}

export const DEFAULT_NETWORK_OPTIONS: NetworkOptions = {
  delayMicrosMin: ms(1),
  delayMicrosMax: ms(5),
  lossProbability: 0,
  duplicateProbability: 0,
  delaySpikeProbability: 0,
  delaySpikeMicrosMax: ms(50),
};

export type DropReason = 'lost' | 'cut';

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  cut: number;
  duplicated: number;
}

export interface NetworkObserver<P> {
  /** The payload reached its destination's network interface. */
  deliver(from: NodeId, to: NodeId, payload: P): void;
  /** The payload will never arrive. */
  dropped?(from: NodeId, to: NodeId, payload: P, reason: DropReason): void;
}

export class SimNetwork<P> {
  private options: NetworkOptions;
  /** `cutLinks` holds "from>to" for every directed link that is down. */
  private readonly cutLinks = new Set<string>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, cut: 0, duplicated: 0 };

  private readonly nodeIdList: NodeId[];

  constructor(
    private readonly sim: Simulation,
    private readonly rng: Rng,
    nodeIds: readonly NodeId[],
    options: Partial<NetworkOptions>,
    private readonly observer: NetworkObserver<P>,
  ) {
    this.nodeIdList = [...nodeIds];
    this.options = { ...DEFAULT_NETWORK_OPTIONS, ...options };
  }

  /** The nodes attached to the network (a node that joins the cluster is attached when it starts). */
  get nodeIds(): readonly NodeId[] {
    return this.nodeIdList;
  }

  addNode(id: NodeId): void {
    if (!this.nodeIdList.includes(id)) this.nodeIdList.push(id);
  }

  get settings(): NetworkOptions {
    return this.options;
  }

  configure(changes: Partial<NetworkOptions>): void {
    this.options = { ...this.options, ...changes };
  }

  isLinkUp(from: NodeId, to: NodeId): boolean {
    return from === to || !this.cutLinks.has(`${from}>${to}`);
  }

  /** Sends `payload`; a bulky one (a snapshot) may take up to `extraDelayMicrosMax` longer. */
  send(from: NodeId, to: NodeId, payload: P, extraDelayMicrosMax: Micros = 0): void {
    this.stats.sent++;
    if (!this.isLinkUp(from, to)) {
      this.drop(from, to, payload, 'cut');
      return;
    }
    if (this.rng.chance(this.options.lossProbability)) {
      this.drop(from, to, payload, 'lost');
      return;
    }
    this.schedule(from, to, payload, extraDelayMicrosMax);
    if (this.rng.chance(this.options.duplicateProbability)) {
      this.stats.duplicated++;
      this.schedule(from, to, payload, extraDelayMicrosMax);
    }
  }

  private schedule(from: NodeId, to: NodeId, payload: P, extraDelayMicrosMax: Micros): void {
    const { delayMicrosMin, delayMicrosMax, delaySpikeProbability, delaySpikeMicrosMax } = this.options;
    let delay = this.rng.intBetween(delayMicrosMin, delayMicrosMax);
    if (extraDelayMicrosMax > 0) delay += this.rng.intBetween(0, extraDelayMicrosMax);
    if (this.rng.chance(delaySpikeProbability)) delay += this.rng.intBetween(0, delaySpikeMicrosMax);
    this.sim.after(delay, () => {
      if (!this.isLinkUp(from, to)) {
        this.drop(from, to, payload, 'cut');
        return;
      }
      this.stats.delivered++;
      this.observer.deliver(from, to, payload);
    });
  }

  private drop(from: NodeId, to: NodeId, payload: P, reason: DropReason): void {
    if (reason === 'lost') this.stats.lost++;
    else this.stats.cut++;
    this.observer.dropped?.(from, to, payload, reason);
  }

  // ---- Faults ---------------------------------------------------------------------------------

  cutOneWay(from: NodeId, to: NodeId): void {
    if (from !== to) this.cutLinks.add(`${from}>${to}`);
  }

  cut(a: NodeId, b: NodeId): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }

  /** Cuts every link between nodes of different groups; links inside a group are left as they are. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i] ?? []) for (const b of groups[j] ?? []) this.cut(a, b);
      }
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.nodeIds) if (other !== id) this.cut(id, other);
  }

  /** Restores every link. */
  heal(): void {
    this.cutLinks.clear();
  }

  /** The directed links that are down, as "from>to", sorted (for traces). */
  describeCuts(): string {
    return [...this.cutLinks].sort().join(' ');
  }

  get hasCuts(): boolean {
    return this.cutLinks.size > 0;
  }
}
