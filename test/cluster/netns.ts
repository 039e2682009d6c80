// A private network for real-process fault tests: one Linux bridge on the host, with an address
// the test's clients use, and one network namespace per node, each with its own address on that
// bridge (a veth pair per node, loopback up inside). Partitions are iptables INPUT rules inside the
// namespaces, always dropping at the receiver, so that a cut link black-holes packets as a real
// network does (an OUTPUT drop would answer the sender at once with EPERM).
//
// Everything is named rkv<pid>_<n>...: the PID of the test process that made it, so a later run can
// tell its own leftovers (a run killed with SIGKILL cannot clean up) from those of a run still going,
// and a cluster counter. Only addresses in one private /24 (10.213.X.0/24, X free on this machine) are
// used, only on the bridge and inside the namespaces created here. Needs root (CAP_NET_ADMIN and
// CAP_SYS_ADMIN); `probeNetns()` says whether this machine can do it, and why not.

import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NAME_PREFIX = 'rkv';
const OWN_NAME_PATTERN = /^rkv(\d+)_/;
/** Temporary data directories of fault-test clusters: rkv-faults-<pid>-<random>. */
export const DATA_DIR_PREFIX = 'rkv-faults-';
const DATA_DIR_PATTERN = /^rkv-faults-(\d+)-/;

export type NetnsSupport = { readonly ok: true; readonly ip: string; readonly iptablesRestore: string } | { readonly ok: false; readonly reason: string };

let cachedSupport: NetnsSupport | undefined;

function findTool(name: string): string | null {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    const candidate = join(dir, name);
    if (dir !== '' && existsSync(candidate)) return candidate;
  }
  return null;
}

/** Can this process build the lab? Tries a real namespace, since root in a container may still lack the capabilities. */
export function probeNetns(): NetnsSupport {
  if (cachedSupport !== undefined) return cachedSupport;
  cachedSupport = probe();
  return cachedSupport;
}

function probe(): NetnsSupport {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: false, reason: 'network namespaces and iptables need root (run as root, or in CI where .ci/run is root)' };
  const ip = findTool('ip');
  if (ip === null) return { ok: false, reason: '`ip` is missing (Debian package iproute2)' };
  const iptablesRestore = findTool('iptables-restore');
  if (iptablesRestore === null || findTool('iptables') === null) return { ok: false, reason: '`iptables` / `iptables-restore` are missing (Debian package iptables)' };
  const name = `${NAME_PREFIX}${process.pid}_probe`;
  try {
    execFileSync(ip, ['netns', 'add', name], { stdio: 'pipe' });
    try {
      execFileSync(ip, ['netns', 'exec', name, iptablesRestore], { input: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', stdio: 'pipe' });
    } finally {
      execFileSync(ip, ['netns', 'del', name], { stdio: 'pipe' });
    }
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return { ok: false, reason: `cannot create a network namespace with iptables in it: ${stderr || (error as Error).message}` };
  }
  return { ok: true, ip, iptablesRestore };
}

function requireSupport(): { ip: string; iptablesRestore: string } {
  const support = probeNetns();
  if (!support.ok) throw new Error(`network namespaces unavailable: ${support.reason}`);
  return support;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function run(ip: string, args: readonly string[]): string {
  return execFileSync(ip, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function tryRun(ip: string, args: readonly string[]): void {
  try {
    run(ip, args);
  } catch {
    // Already gone.
  }
}

/**
 * Removes namespaces, links and data directories that earlier fault-test runs left behind: only
 * those with our name pattern whose owning test process is gone. Processes still running inside
 * such a namespace are nodes an earlier run started; they are ended by their PID.
 */
export function cleanLeftovers(): string[] {
  const { ip } = requireSupport();
  const removed: string[] = [];
  const stale = (name: string): boolean => {
    const match = OWN_NAME_PATTERN.exec(name);
    return match !== null && Number(match[1]) !== process.pid && !isAlive(Number(match[1]));
  };
  for (const line of run(ip, ['netns', 'list']).split('\n')) {
    const name = line.trim().split(/\s+/)[0] ?? '';
    if (!stale(name)) continue;
    let pids: number[] = [];
    try {
      pids = run(ip, ['netns', 'pids', name]).split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
    } catch { /* no processes */ }
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    tryRun(ip, ['netns', 'del', name]);
    removed.push(`netns ${name}${pids.length > 0 ? ` (killed pids ${pids.join(',')})` : ''}`);
  }
  for (const line of run(ip, ['-o', 'link', 'show']).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name === undefined || !stale(name)) continue;
    tryRun(ip, ['link', 'del', name]);
    removed.push(`link ${name}`);
  }
  for (const entry of readdirSync(tmpdir())) {
    const match = DATA_DIR_PATTERN.exec(entry);
    if (match === null || Number(match[1]) === process.pid || isAlive(Number(match[1]))) continue;
    // The gateway runs outside the namespaces; like every process a run starts, its working
    // directory is the run's data directory, which is how its leftovers are recognised.
    const dir = join(tmpdir(), entry);
    const pids = processesIn(dir);
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
    removed.push(`dir ${entry}${pids.length > 0 ? ` (killed pids ${pids.join(',')})` : ''}`);
  }
  return removed;
}

/** PIDs of processes whose working directory is `dir` or below it. */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) pids.push(Number(entry));
    } catch { /* gone, or not ours to read */ }
  }
  return pids;
}

/** A subnet third octet not yet used by any address or route on this machine. */
function pickSubnet(ip: string): string {
  const used = run(ip, ['-4', '-o', 'addr', 'show']) + run(ip, ['-4', 'route', 'show', 'table', 'all']);
  const start = (process.pid % 200) + 20;
  for (let i = 0; i < 200; i++) {
    const octet = ((start + i - 20) % 200) + 20;
    if (!used.includes(`10.213.${octet}.`)) return `10.213.${octet}`;
  }
  throw new Error('no free 10.213.X.0/24 subnet on this machine');
}

let labCounter = 0;
const liveLabs = new Set<NetLab>();
const exitHooks = new Set<() => void>();
let exitHandlersInstalled = false;

/** Synchronous teardown run at process exit and on SIGINT/SIGTERM, whatever happened to the tests. */
export function onExitCleanup(hook: () => void): () => void {
  installExitHandlers();
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

function runExitHooks(): void {
  for (const hook of [...exitHooks]) {
    try { hook(); } catch { /* best effort at exit */ }
  }
  exitHooks.clear();
  for (const lab of [...liveLabs]) lab.destroy();
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', runExitHooks);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      runExitHooks();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** The bridge, one namespace per node and the partition rules. Node i (from 1) is 10.213.X.(10+i). */
export class NetLab {
  readonly prefix: string;
  readonly bridge: string;
  readonly subnet: string;
  readonly hostAddress: string;
  /** Directed cuts: `${from}>${to}` means packets from node `from` never reach node `to`. */
  private readonly cuts = new Set<string>();
  /** Nodes the host side (test clients, the gateway) cannot reach: packets from the bridge address are dropped. */
  private readonly hostCuts = new Set<number>();
  private readonly ip: string;
  private readonly iptablesRestore: string;
  private destroyed = false;

  private constructor(readonly nodeCount: number) {
    const support = requireSupport();
    this.ip = support.ip;
    this.iptablesRestore = support.iptablesRestore;
    if (labCounter >= 36) throw new Error('too many labs in one test process');
    this.prefix = `${NAME_PREFIX}${process.pid}_${(labCounter++).toString(36)}`;
    if (`${this.prefix}h${nodeCount}`.length > 15) throw new Error(`interface names would exceed 15 characters (${this.prefix})`);
    this.bridge = `${this.prefix}b`;
    this.subnet = pickSubnet(this.ip);
    this.hostAddress = `${this.subnet}.1`;
  }

  static create(nodeCount: number): NetLab {
    if (nodeCount < 1 || nodeCount > 9) throw new Error('1 to 9 nodes');
    installExitHandlers();
    const lab = new NetLab(nodeCount);
    liveLabs.add(lab);
    try {
      lab.build();
    } catch (error) {
      lab.destroy();
      throw error;
    }
    return lab;
  }

  namespace(node: number): string {
    return `${this.prefix}n${node}`;
  }

  address(node: number): string {
    return `${this.subnet}.${10 + node}`;
  }

  /** argv to run a program inside node's namespace; `exec` replaces `ip`, so the PID is the program's own. */
  execArgv(node: number, argv: readonly string[]): { command: string; args: string[] } {
    return { command: this.ip, args: ['netns', 'exec', this.namespace(node), ...argv] };
  }

  private build(): void {
    const { ip } = this;
    run(ip, ['link', 'add', this.bridge, 'type', 'bridge']);
    run(ip, ['addr', 'add', `${this.hostAddress}/24`, 'dev', this.bridge]);
    run(ip, ['link', 'set', this.bridge, 'up']);
    for (let node = 1; node <= this.nodeCount; node++) {
      const ns = this.namespace(node);
      const hostSide = `${this.prefix}h${node}`;
      const nsSide = `${this.prefix}v${node}`;
      run(ip, ['netns', 'add', ns]);
      run(ip, ['link', 'add', hostSide, 'type', 'veth', 'peer', 'name', nsSide]);
      run(ip, ['link', 'set', hostSide, 'master', this.bridge]);
      run(ip, ['link', 'set', hostSide, 'up']);
      run(ip, ['link', 'set', nsSide, 'netns', ns]);
      run(ip, ['-n', ns, 'addr', 'add', `${this.address(node)}/24`, 'dev', nsSide]);
      run(ip, ['-n', ns, 'link', 'set', nsSide, 'up']);
      run(ip, ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (let node = 1; node <= this.nodeCount; node++) this.applyRulesSync(node);
  }

  // ---- partitions --------------------------------------------------------------------------------

  /** Nodes in different groups cannot exchange packets; nodes in no group are unaffected. Replaces every cut. */
  async partition(groups: readonly (readonly number[])[]): Promise<void> {
    this.cuts.clear();
    for (const a of groups) for (const b of groups) {
      if (a === b) continue;
      for (const from of a) for (const to of b) this.cuts.add(`${from}>${to}`);
    }
    await this.applyAll();
  }

  /** Packets from `from` to each of `to` are dropped (added to the current cuts). */
  async cutOneWay(from: number, to: readonly number[]): Promise<void> {
    for (const target of to) this.cuts.add(`${from}>${target}`);
    await this.applyAll();
  }

  /** Every node cut off from every other in both directions (clients still reach all). */
  async isolate(node: number): Promise<void> {
    for (let other = 1; other <= this.nodeCount; other++) {
      if (other === node) continue;
      this.cuts.add(`${node}>${other}`);
      this.cuts.add(`${other}>${node}`);
    }
    await this.applyAll();
  }

  /** The host side (clients and the gateway) can no longer reach `node`; the nodes still can. */
  async cutFromHost(node: number): Promise<void> {
    this.hostCuts.add(node);
    await this.applyAll();
  }

  async heal(): Promise<void> {
    this.cuts.clear();
    this.hostCuts.clear();
    await this.applyAll();
  }

  describeCuts(): string {
    const all = [...[...this.cuts].sort(), ...[...this.hostCuts].map((node) => `host>${node}`)];
    return all.length === 0 ? 'none' : all.join(' ');
  }

  private rulesFor(node: number): string {
    const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
    for (const cut of this.cuts) {
      const [from, to] = cut.split('>').map(Number);
      if (to === node) lines.push(`-A INPUT -s ${this.address(from)}/32 -j DROP`);
    }
    if (this.hostCuts.has(node)) lines.push(`-A INPUT -s ${this.hostAddress}/32 -j DROP`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  private applyRulesSync(node: number): void {
    execFileSync(this.ip, ['netns', 'exec', this.namespace(node), this.iptablesRestore], { input: this.rulesFor(node), stdio: ['pipe', 'pipe', 'pipe'] });
  }

  private async applyAll(): Promise<void> {
    if (this.destroyed) throw new Error('lab destroyed');
    const jobs: Promise<void>[] = [];
    for (let node = 1; node <= this.nodeCount; node++) {
      const rules = this.rulesFor(node);
      jobs.push(new Promise<void>((resolve, reject) => {
        const child = execFile(this.ip, ['netns', 'exec', this.namespace(node), this.iptablesRestore], (error, _stdout, stderr) => {
          if (error) reject(new Error(`iptables-restore in ${this.namespace(node)} failed: ${stderr || error.message}`));
          else resolve();
        });
        child.stdin?.end(rules);
      }));
    }
    await Promise.all(jobs);
  }

  /** Removes the namespaces and the bridge; idempotent and synchronous (usable at process exit). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (let node = 1; node <= this.nodeCount; node++) {
      tryRun(this.ip, ['netns', 'del', this.namespace(node)]);
      tryRun(this.ip, ['link', 'del', `${this.prefix}h${node}`]);
    }
    tryRun(this.ip, ['link', 'del', this.bridge]);
  }
}

/** Whether the host firewall would drop traffic between the namespaces (bridged frames through FORWARD). */
export function hostForwardingHint(): string {
  try {
    const callIptables = readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim();
    if (callIptables !== '1') return '';
    const policy = execFileSync('iptables', ['-S', 'FORWARD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    if (/-P FORWARD (DROP|REJECT)/.test(policy)) {
      return ' (hint: br_netfilter is on and the host FORWARD policy drops; bridged traffic between the test namespaces may be blocked)';
    }
  } catch { /* no br_netfilter */ }
  return '';
}
