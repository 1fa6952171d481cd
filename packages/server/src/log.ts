/*
 * Structured logs: one JSON object per line. Fields whose names suggest
 * secrets are replaced, whatever their value; callers pass ids, codes and
 * numbers, never key material (SecretBytes prints as a placeholder anyway).
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_WORD = /key|kek|secret|credential|authorization|token|password|passwd|passphrase|bearer|cookie/;
/** Words that hold a secret stem and name no secret: a Cassandra keyspace is a name. */
const NOT_SECRET_WORDS: ReadonlySet<string> = new Set(['keyspace', 'keyspaces']);

/**
 * Whether a field is redacted: its name split into words (camelCase, snake_case, kebab-case,
 * dotted), any word holding a secret stem ("rootKey", "api_key", "KEK", "apikey", "keyBytes")
 * except the listed non-secret words, so "keyspace" and "journalKeyspace" print and
 * "keyspacePassword" does not.
 */
export function isSecretField(name: string): boolean {
  const words = name
    .split(/(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+/)
    .map((word) => word.toLowerCase())
    .filter((word) => word !== '');
  return words.some((word) => SECRET_WORD.test(word) && !NOT_SECRET_WORDS.has(word));
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < min) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg };
    if (fields !== undefined) {
      for (const [name, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        entry[name] = isSecretField(name) ? '[redacted]' : value;
      }
    }
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}
