// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time by function, by
// file and by area (src/<layer>, node_modules/<package>, Node internals, GC, idle), and the total
// (inclusive) time of our own functions. Positions in dist/*.js are mapped back to the TypeScript
// through the .js.map files beside them when present.
//
//   node dist/bench/tools/cpuprofile-summary.js FILE.cpuprofile [--top 20] [--from-us T] [--to-us T] [--json]
//
// --from-us/--to-us keep only the samples taken in that span of the profile's clock, which on Linux
// is CLOCK_MONOTONIC in microseconds (process.hrtime in any process), so a benchmark can keep only
// its measurement window.

import { existsSync, readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface TimeRow {
  readonly name: string;
  readonly ms: number;
  readonly percent: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly sampledMs: number;
  readonly samples: number;
  /** Share of the sampled time the process was not idle. */
  readonly busyPercent: number;
  readonly selfByFunction: readonly TimeRow[];
  readonly selfByFile: readonly TimeRow[];
  readonly selfByArea: readonly TimeRow[];
  /** Time spent in a function of src/ or anything it called. */
  readonly totalByOwnFunction: readonly TimeRow[];
}

const repositoryRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** Maps dist/.../x.js:line to src/.../x.ts:line through x.js.map, caching each map. */
class SourcePositions {
  private readonly maps = new Map<string, SourceMap | null>();

  describe(frame: CallFrame): { file: string; line: number } {
    const file = this.fileOf(frame.url);
    if (!frame.url.startsWith('file://')) return { file, line: frame.lineNumber + 1 };
    const jsPath = fileURLToPath(frame.url);
    const map = this.mapFor(jsPath);
    if (map !== null && frame.lineNumber >= 0) {
      const entry = map.findEntry(frame.lineNumber, Math.max(0, frame.columnNumber)) as { originalSource?: string; originalLine?: number };
      if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
        const source = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : resolve(jsPath, '..', entry.originalSource);
        return { file: shortPath(source), line: entry.originalLine + 1 };
      }
    }
    return { file, line: frame.lineNumber + 1 };
  }

  fileOf(url: string): string {
    if (url === '') return '';
    if (!url.startsWith('file://')) return url;
    return shortPath(fileURLToPath(url));
  }

  private mapFor(jsPath: string): SourceMap | null {
    const cached = this.maps.get(jsPath);
    if (cached !== undefined) return cached;
    let map: SourceMap | null = null;
    const mapPath = `${jsPath}.map`;
    if (existsSync(mapPath)) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(mapPath, 'utf8')) as SourceMapPayload);
      } catch {
        map = null;
      }
    }
    this.maps.set(jsPath, map);
    return map;
  }
}

/** A path as the repository names it: src/x.ts, dist/src/x.js, node_modules/pkg/... (also for the
 * copy of dist/ the suite runs from, under a directory named bench-app). */
function shortPath(path: string): string {
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + 1);
  const snapshot = path.lastIndexOf('/bench-app/');
  if (snapshot >= 0) return path.slice(snapshot + '/bench-app/'.length);
  const fromRoot = relative(repositoryRoot, path);
  return fromRoot.startsWith('..') ? path : fromRoot;
}

function areaOf(frame: CallFrame, file: string): string {
  const name = frame.functionName;
  if (name === '(garbage collector)' || name === '(idle)' || name === '(program)' || name === '(root)') return name;
  if (frame.url.startsWith('node:')) return 'node internals';
  const own = /^(?:dist\/)?(src|bench|test)\/([^/]+)\//.exec(file);
  if (own !== null) return `${own[1]}/${own[2]}`;
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  if (module !== null) return `node_modules/${module[1]}`;
  if (file === '') return '(native, V8 builtins)';
  return file;
}

function rows(totals: Map<string, number>, wholeMs: number, top: number): TimeRow[] {
  return [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, ms]) => ({ name, ms, percent: wholeMs > 0 ? (100 * ms) / wholeMs : 0 }));
}

function add(totals: Map<string, number>, key: string, ms: number): void {
  totals.set(key, (totals.get(key) ?? 0) + ms);
}

export function summarizeProfile(file: string, options: { top?: number; fromUs?: number; toUs?: number } = {}): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const top = options.top ?? 20;
  const positions = new SourcePositions();
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  const described = new Map<number, { key: string; file: string; area: string; own: boolean }>();
  const describe = (id: number): { key: string; file: string; area: string; own: boolean } => {
    const cached = described.get(id);
    if (cached !== undefined) return cached;
    const frame = byId.get(id)?.callFrame ?? { functionName: '?', url: '', lineNumber: -1, columnNumber: -1 };
    const where = positions.describe(frame);
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    const key = where.file === '' ? name : `${name}  ${where.file}:${where.line}`;
    const area = areaOf(frame, where.file);
    const value = { key, file: where.file === '' ? name : where.file, area, own: area.startsWith('src/') };
    described.set(id, value);
    return value;
  };

  const selfByFunction = new Map<string, number>();
  const selfByFile = new Map<string, number>();
  const selfByArea = new Map<string, number>();
  const totalByOwn = new Map<string, number>();
  let sampledMs = 0;
  let idleMs = 0;
  let samples = 0;
  let timestampUs = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    timestampUs += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if (options.fromUs !== undefined && timestampUs < options.fromUs) continue;
    if (options.toUs !== undefined && timestampUs >= options.toUs) continue;
    const id = profile.samples[i];
    const self = describe(id);
    samples += 1;
    sampledMs += ms;
    if (self.area === '(idle)') idleMs += ms;
    add(selfByFunction, self.key, ms);
    add(selfByFile, self.file, ms);
    add(selfByArea, self.area, ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const frame = describe(at);
      if (!frame.own || seen.has(frame.key)) continue;
      seen.add(frame.key);
      add(totalByOwn, frame.key, ms);
    }
  }
  return {
    file,
    sampledMs,
    samples,
    busyPercent: sampledMs > 0 ? (100 * (sampledMs - idleMs)) / sampledMs : 0,
    selfByFunction: rows(selfByFunction, sampledMs, top),
    selfByFile: rows(selfByFile, sampledMs, top),
    selfByArea: rows(selfByArea, sampledMs, top),
    totalByOwnFunction: rows(totalByOwn, sampledMs, top),
  };
}

export function formatProfileSummary(summary: ProfileSummary, top = 15): string {
  const table = (title: string, list: readonly TimeRow[]): string => [
    title,
    ...list.slice(0, top).map((row) => `  ${row.ms.toFixed(0).padStart(7)} ms ${row.percent.toFixed(1).padStart(5)}%  ${row.name}`),
  ].join('\n');
  return [
    `${summary.file}: ${summary.samples} samples over ${(summary.sampledMs / 1000).toFixed(1)} s, busy ${summary.busyPercent.toFixed(0)}% of it`,
    table('self time by function:', summary.selfByFunction),
    table('self time by area:', summary.selfByArea),
    table('self time by file:', summary.selfByFile),
    table('total time (self + callees) of our functions (src/):', summary.totalByOwnFunction),
  ].join('\n');
}

function main(): void {
  const argv = process.argv.slice(2);
  let file = '';
  let top = 20;
  let fromUs: number | undefined;
  let toUs: number | undefined;
  let json = false;
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    if (flag === '--top') top = Number(argv[++k]);
    else if (flag === '--from-us') fromUs = Number(argv[++k]);
    else if (flag === '--to-us') toUs = Number(argv[++k]);
    else if (flag === '--json') json = true;
    else if (!flag.startsWith('--') && file === '') file = flag;
    else throw new Error(`unknown argument ${flag}`);
  }
  if (file === '') throw new Error('usage: cpuprofile-summary FILE.cpuprofile [--top N] [--from-us T] [--to-us T] [--json]');
  const summary = summarizeProfile(file, { top, fromUs, toUs });
  process.stdout.write(json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatProfileSummary(summary, top)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  try {
    main();
  } catch (error) {
    process.stderr.write(`cpuprofile-summary: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
