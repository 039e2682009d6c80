// Every process the suite starts is registered here and ended by its PID: when a cluster stops, and
// again on the way out (normal exit, Ctrl-C, SIGTERM, an uncaught error), so no node, etcd member or
// load generator outlives a run. Temp directories registered here are removed on the way out too.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';

export const HOST = '127.0.0.1';

interface Tracked {
  readonly name: string;
  readonly child: ChildProcess;
}

const tracked = new Map<number, Tracked>();
const tempDirectories = new Set<string>();
let handlersInstalled = false;
let exiting = false;

/** Spawns and registers a child; it is forgotten once it exits. */
export function spawnTracked(name: string, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  if (child.pid === undefined) {
    // spawn() failed synchronously (ENOENT and the like are reported through 'error').
    child.once('error', () => {});
    throw new Error(`could not start ${name} (${command})`);
  }
  const pid = child.pid;
  tracked.set(pid, { name, child });
  child.once('exit', () => tracked.delete(pid));
  return child;
}

export function isRunning(child: ChildProcess | null): child is ChildProcess {
  return child !== null && child.exitCode === null && child.signalCode === null;
}

/** Sends `signal` to one child by PID and waits for its exit; SIGKILL after `graceMs` if needed. */
export async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  if (signal === 'SIGKILL') {
    await exited;
    return;
  }
  const timer = setTimeout(() => { if (isRunning(child)) child.kill('SIGKILL'); }, graceMs);
  await exited;
  clearTimeout(timer);
}

export function registerTempDirectory(path: string): void {
  tempDirectories.add(path);
}

export function removeTempDirectory(path: string): void {
  tempDirectories.delete(path);
  rmSync(path, { recursive: true, force: true });
}

/** SIGKILL every child still running, by PID, and remove registered temp directories. Synchronous,
 * so it can run inside an 'exit' handler. */
export function killAllNow(): void {
  for (const [pid, entry] of tracked) {
    try {
      if (isRunning(entry.child)) process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  tracked.clear();
  for (const path of tempDirectories) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // Best effort on the way out.
    }
  }
  tempDirectories.clear();
}

export function installCleanupHandlers(onInterrupt: () => void = () => {}): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => killAllNow());
  const interrupt = (signal: NodeJS.Signals): void => {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`\nbench: ${signal}: stopping every process the suite started\n`);
    onInterrupt();
    killAllNow();
    process.exit(130);
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  process.on('SIGHUP', interrupt);
  process.on('uncaughtException', (error) => {
    process.stderr.write(`\nbench: uncaught error: ${error.stack ?? error.message}\n`);
    killAllNow();
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    process.stderr.write(`\nbench: unhandled rejection: ${(error as Error)?.stack ?? String(error)}\n`);
    killAllNow();
    process.exit(1);
  });
}

export function trackedCount(): number {
  return tracked.size;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export interface ProcessMemory {
  /** Peak resident set since the process started (VmHWM). */
  readonly peakRssBytes: number;
  /** Resident set now (VmRSS), and its anonymous part (heap, stacks: RssAnon) and file-backed part
   * (mapped files such as an lmdb or bbolt database: RssFile). */
  readonly rssBytes: number;
  readonly rssAnonBytes: number;
  readonly rssFileBytes: number;
}

/** VmHWM and VmRSS from /proc/PID/status; null when the process is gone. */
export function readProcessMemory(pid: number): ProcessMemory | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kilobytes = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match === null ? NaN : Number(match[1]) * 1024;
  };
  return { peakRssBytes: kilobytes('VmHWM'), rssBytes: kilobytes('VmRSS'), rssAnonBytes: kilobytes('RssAnon'), rssFileBytes: kilobytes('RssFile') };
}

/** User plus system CPU time a process has used, in ms (from /proc/PID/stat). */
export function readProcessCpuMs(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ticksPerSecond = 100;
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return NaN;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds on CLOCK_MONOTONIC, which every process on the machine shares (libuv's hrtime). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Keeps the last lines a child printed, to show when something goes wrong. */
export function keepTail(child: ChildProcess, lines: string[], maxLines = 200): void {
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
    }
    if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
}
