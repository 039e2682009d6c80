// Structured logs: one JSON object a line on stderr, with fixed fields (time, level, msg) and the
// context a component binds (node id, component). Small on purpose: nothing here needs a package.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}

export type LineSink = (line: string) => void;

export function isLogLevel(value: string): value is LogLevel {
  return value in LEVEL_RANK;
}

export function createLogger(level: LogLevel = 'info', bound: Record<string, unknown> = {}, sink: LineSink = (line) => process.stderr.write(line)): Logger {
  const threshold = LEVEL_RANK[level];
  const write = (at: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVEL_RANK[at] < threshold) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level: at, msg, ...bound, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, errorReplacer);
    } catch {
      line = JSON.stringify({ time: record.time, level: at, msg, note: 'fields were not serializable' });
    }
    sink(`${line}\n`);
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => createLogger(level, { ...bound, ...fields }, sink),
  };
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = {
  debug: () => {}, info: () => {}, warn: () => {}, error: () => {},
  child: () => silentLogger,
};

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  if (typeof value === 'bigint') return value.toString();
  return value;
}
