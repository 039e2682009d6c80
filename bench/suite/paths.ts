// Where the scripts the suite starts (raft-node, load generator, trivial server, data builder) are
// taken from. Others rebuild dist/ while a run goes on (a run takes up to an hour), so the suite first
// copies dist/src and dist/bench into its temp root and starts every process from that copy: a run
// measures one build from start to end, and a half-written rebuild cannot break it.

import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const liveDist = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const repositoryRoot = resolve(liveDist, '..');
let distRoot = liveDist;
/** Name of the copy's directory; cpuprofile-summary.ts recognizes paths under it. */
export const SNAPSHOT_DIRECTORY = 'bench-app';

/** A file under dist/ (of the snapshot, once taken). */
export function distPath(relative: string): string {
  return join(distRoot, relative);
}

/** Copies dist/src and dist/bench under `root` (with package.json, for "type": "module", and a link
 * to node_modules) and uses the copy from now on. Returns the copy's dist directory. */
export function snapshotDist(root: string): string {
  const app = join(root, SNAPSHOT_DIRECTORY);
  const dist = join(app, 'dist');
  mkdirSync(dist, { recursive: true });
  cpSync(join(liveDist, 'src'), join(dist, 'src'), { recursive: true });
  cpSync(join(liveDist, 'bench'), join(dist, 'bench'), { recursive: true, filter: (source) => !source.includes(`${join(liveDist, 'bench', 'results')}`) });
  cpSync(join(repositoryRoot, 'package.json'), join(app, 'package.json'));
  symlinkSync(join(repositoryRoot, 'node_modules'), join(app, 'node_modules'), 'dir');
  distRoot = dist;
  return dist;
}
