// Settings of a raft-node process: from command-line flags, the environment, or a `.env` file in
// the working directory, in that order of precedence. Every environment name has a kebab-case
// flag (NODE_ID / --node-id). A wrong or missing setting stops the process with one clear line.

import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parseEnv } from 'node:util';
import { isLogLevel, type LogLevel } from '../common/logger.js';

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** One source of raw string settings, keyed by environment name. */
export type RawSettings = Readonly<Record<string, string | undefined>>;

/** Flags `--node-id 3` or `--node-id=3` become NODE_ID; bare flags (`--check-config`) become "true". */
export function parseFlags(argv: readonly string[]): RawSettings {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new SettingsError(`unexpected argument "${arg}" (settings are --name value)`);
    const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const name = flag.toUpperCase().replaceAll('-', '_');
    if (inline !== undefined) out[name] = inline;
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[name] = argv[++i];
    else out[name] = 'true';
  }
  return out;
}

/** Reads `.env` from `directory` if it exists (Node's own parser). */
export function readDotEnv(directory: string): RawSettings {
  const path = `${directory}/.env`;
  if (!existsSync(path)) return {};
  return parseEnv(readFileSync(path, 'utf8'));
}

/** Flags override the environment, which overrides the .env file. */
export function mergeSources(flags: RawSettings, env: RawSettings, dotEnv: RawSettings): RawSettings {
  const merged: Record<string, string | undefined> = { ...dotEnv };
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') merged[key] = value;
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) merged[key] = value;
  return merged;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export function parseHostPort(value: string, name: string): HostPort {
  const trimmed = value.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(trimmed);
  if (match === null) throw new SettingsError(`${name}: "${value}" is not host:port`);
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw new SettingsError(`${name}: port ${port} is out of range`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

export function integerSetting(raw: RawSettings, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = raw[name];
  if (value === undefined || value.trim() === '') return fallback;
  if (!/^\d+$/.test(value.trim())) throw new SettingsError(`${name}: "${value}" is not a whole number`);
  const parsed = Number(value.trim());
  if (parsed < min || parsed > max) throw new SettingsError(`${name}: ${parsed} is outside ${min}..${max}`);
  return parsed;
}

export function booleanSetting(raw: RawSettings, name: string, fallback: boolean): boolean {
  const value = raw[name]?.trim().toLowerCase();
  if (value === undefined || value === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new SettingsError(`${name}: "${raw[name]}" is not true or false`);
}

export function logLevelSetting(raw: RawSettings): LogLevel {
  const value = (raw.LOG_LEVEL ?? 'info').trim().toLowerCase();
  if (!isLogLevel(value)) throw new SettingsError(`LOG_LEVEL: "${raw.LOG_LEVEL}" is not one of debug, info, warn, error`);
  return value;
}

/** CLUSTER_NODES: "a:1,b:2,c:3" (the n-th is node n) or "1=a:1,2=b:2". Returns id -> address. */
export function parseClusterNodes(value: string): Map<number, string> {
  const parts = value.split(',').map((part) => part.trim()).filter((part) => part !== '');
  if (parts.length === 0) throw new SettingsError('CLUSTER_NODES: no addresses given');
  const nodes = new Map<number, string>();
  parts.forEach((part, position) => {
    const explicit = /^(\d+)=(.+)$/.exec(part);
    const id = explicit ? Number(explicit[1]) : position + 1;
    const address = formatHostPort(parseHostPort(explicit ? explicit[2] : part, 'CLUSTER_NODES'));
    if (id < 1) throw new SettingsError(`CLUSTER_NODES: node ids start at 1 (got ${id})`);
    if (nodes.has(id)) throw new SettingsError(`CLUSTER_NODES: node ${id} is listed twice`);
    if ([...nodes.values()].includes(address)) throw new SettingsError(`CLUSTER_NODES: ${address} is listed twice`);
    nodes.set(id, address);
  });
  return nodes;
}

/** A cluster id every founding member computes alike, before any contact. */
export function computeClusterId(clusterNodes: ReadonlyMap<number, string>, token: string): string {
  const canonical = [...clusterNodes.entries()].sort(([a], [b]) => a - b).map(([id, address]) => `${id}=${address}`).join(',');
  return createHash('sha256').update(`${canonical}|${token}`).digest('hex').slice(0, 16);
}
