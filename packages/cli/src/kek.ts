import { KID_PATTERN, PadlockError } from '@padlock/core';
import {
  createLogger,
  loadKek,
  loadKeks,
  openJournal,
  parseConfig,
  readCheckpoint,
  rewrapAll,
  rowsPerKid,
  REWRAP_PHASES,
  type AuditLog,
  type KeyStore,
  type PadlockConfig,
  type RewrapCheckpoint,
  type RewrapProgress,
} from '@padlock/server';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';

/*
 * `padlock kek add|activate|rewrap|status|retire` (docs/operations.md,
 * "Rotating the KEK"). add and activate edit the config's keks section (the
 * servers pick it up when restarted); rewrap moves every row to the active
 * kid online; retire takes a kid out of the config once nothing uses it.
 * Each change is appended to the audit log.
 */

export class KekUsageError extends Error {}

const stderrLog = () => createLogger('warn', (l) => process.stderr.write(l));

/** The config file as JSON, to edit its keks section and nothing else. */
interface RawConfig {
  keks: { active: string; files: { kid: string; path: string }[] };
  [key: string]: unknown;
}

function readRaw(configFile: string): RawConfig {
  return JSON.parse(readFileSync(configFile, 'utf8')) as RawConfig;
}

/** Validates the edited config as a server would, then writes it whole and renames it in. */
function writeRaw(configFile: string, raw: RawConfig): void {
  parseConfig(raw, dirname(configFile));
  const temporary = `${configFile}.kek-tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(raw, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, configFile);
}

/** Adds a KEK file to the config (not yet active). The kid defaults to the file's name without extension. */
export function addKek(
  configFile: string,
  file: string,
  kid: string | undefined,
): { added: string; active: string; next: string } {
  const id = kid ?? basename(file).replace(/\.[^.]*$/, '');
  if (!KID_PATTERN.test(id))
    throw new KekUsageError(`kid "${id}" must be 1-64 characters of [A-Za-z0-9._-]; give --kid`);
  const raw = readRaw(configFile);
  if (raw.keks.files.some((f) => f.kid === id))
    throw new KekUsageError(`the config has a KEK with kid "${id}" already`);
  const path = resolve(file);
  // Exactly 32 bytes, owner-only: the checks a server makes at start, made now.
  loadKek(id, path).key.wipe();
  const fromConfig = relative(dirname(configFile), path);
  raw.keks.files.push({ kid: id, path: fromConfig.startsWith('..') || isAbsolute(fromConfig) ? path : fromConfig });
  writeRaw(configFile, raw);
  return {
    added: id,
    active: raw.keks.active,
    next: `restart every server so each loads "${id}", then: padlock kek activate ${id}`,
  };
}

export function activateKek(configFile: string, kid: string): { active: string; previous: string; next: string } {
  const raw = readRaw(configFile);
  if (!raw.keks.files.some((f) => f.kid === kid)) {
    throw new KekUsageError(`no KEK with kid "${kid}" in the config; padlock kek add FILE first`);
  }
  const previous = raw.keks.active;
  raw.keks.active = kid;
  writeRaw(configFile, raw);
  return {
    active: kid,
    previous,
    next: 'restart every server (new keys are wrapped under the active kid), then: padlock kek rewrap',
  };
}

/**
 * Rows per kid, journal entries per kid, and the last re-wrap's checkpoint. A journal entry counts
 * under its kid only until a re-key entry covers it (`padlock kek rekey-journal`): from then on
 * the re-key entry's digest verifies it, not its own MAC, so its KEK is no longer needed.
 */
export async function kekStatus(
  config: PadlockConfig,
  store: KeyStore,
  checkpointFile: string,
): Promise<{
  active: string;
  loaded: string[];
  rows: Record<string, Record<string, number>>;
  journal: { entries: number; lastRekey: number | null; coveredByRekey: number };
  rewrap: unknown;
}> {
  const keks = loadKeks(config);
  const rows = await rowsPerKid(store);
  const journal = await openJournal(config, keks, stderrLog(), { write: false });
  let since = new Map<string, number>();
  let entries = 0;
  let lastRekey: number | null = null;
  try {
    for await (const entry of journal.entriesAfter(0)) {
      entries++;
      if (entry.rekey !== undefined) {
        since = new Map();
        lastRekey = entry.position;
      }
      since.set(entry.kid, (since.get(entry.kid) ?? 0) + 1);
    }
  } finally {
    await journal.close();
  }
  for (const [kid, n] of since) (rows[kid] ??= {})['journal'] = n;
  const checkpoint = readCheckpoint(checkpointFile);
  return {
    active: config.keks.active,
    loaded: config.keks.files.map((f) => f.kid),
    rows,
    journal: { entries, lastRekey, coveredByRekey: lastRekey === null ? 0 : lastRekey - 1 },
    rewrap: checkpoint === undefined ? null : checkpointJson(checkpoint),
  };
}

/**
 * Appends a re-key entry to the shred journal under the active KEK, so the KEKs that MAC'd the
 * entries before it can be retired (journal/entry.ts). Safe while servers append: the entry takes
 * the next position like a shred. Entries appended after it by a server still on an old KEK keep
 * that KEK in use (kek status shows them): restart that server and run this again.
 */
export async function rekeyJournal(config: PadlockConfig): Promise<Record<string, unknown>> {
  const keks = loadKeks(config);
  const journal = await openJournal(config, keks, stderrLog(), { write: true });
  try {
    const entry = await journal.rekey();
    if (entry === null) {
      return {
        rekeyed: false,
        kid: keks.active.kid,
        why: 'every journal entry since the last re-key is under the active KEK',
      };
    }
    return {
      rekeyed: true,
      position: entry.position,
      kid: entry.kid,
      from: entry.rekey?.fromKid,
      covered: entry.position - 1,
      next: 'padlock kek status; then padlock kek retire KID for each KEK no row uses',
    };
  } finally {
    await journal.close();
  }
}

function checkpointJson(c: RewrapCheckpoint): Record<string, unknown> {
  return {
    kid: c.kid,
    phase: c.phase,
    step: c.phase === 'done' ? REWRAP_PHASES.length : REWRAP_PHASES.indexOf(c.phase) + 1,
    of: REWRAP_PHASES.length,
    counts: c.counts,
    rate: c.rate,
    startedAt: new Date(c.startedAt).toISOString(),
    updatedAt: new Date(c.updatedAt).toISOString(),
  };
}

/** Takes a kid out of the config once nothing uses it. */
export async function retireKek(
  configFile: string,
  config: PadlockConfig,
  store: KeyStore,
  kid: string,
  checkpointFile: string,
): Promise<Record<string, unknown>> {
  if (!config.keks.files.some((f) => f.kid === kid)) throw new KekUsageError(`no KEK with kid "${kid}" in the config`);
  if (config.keks.active === kid) {
    throw new PadlockError('KEK_IN_USE', `"${kid}" is the active KEK; activate another and re-wrap first`);
  }
  const status = await kekStatus(config, store, checkpointFile);
  const using = status.rows[kid];
  if (using !== undefined) {
    const what = Object.entries(using)
      .map(([table, n]) => `${n} ${table}`)
      .join(', ');
    const next =
      using['journal'] !== undefined && Object.keys(using).length === 1
        ? 'padlock kek rekey-journal'
        : 'padlock kek rewrap, then padlock kek rekey-journal';
    throw new PadlockError('KEK_IN_USE', `"${kid}" is still in use: ${what}; run ${next} first`);
  }
  const raw = readRaw(configFile);
  const file = raw.keks.files.find((f) => f.kid === kid);
  raw.keks.files = raw.keks.files.filter((f) => f.kid !== kid);
  writeRaw(configFile, raw);
  return {
    retired: kid,
    file: file?.path,
    next: 'restart every server (none loads the KEK any more), then destroy the KEK file and every copy of it',
  };
}

export interface RewrapCommandOptions {
  readonly rate: number;
  readonly pageSize: number;
  readonly batch: number;
  readonly checkpointFile: string;
  readonly metricsFile: string | undefined;
  /** Serve the progress at http://host:port/metrics while the re-wrap runs (port 0: any free port). */
  readonly metricsListen?: { readonly host: string; readonly port: number };
}

/** Runs the re-wrap with a progress bar on a terminal, JSON progress lines on stdout otherwise. */
export async function rewrapCommand(
  config: PadlockConfig,
  store: KeyStore,
  options: RewrapCommandOptions,
  audit: () => Promise<AuditLog>,
  actor: string,
): Promise<{ code: number; result: Record<string, unknown> }> {
  const keks = loadKeks(config);
  const tty = process.stderr.isTTY;
  let latest = rewrapMetricsText(undefined, Date.now());
  const listener =
    options.metricsListen === undefined ? undefined : await serveMetrics(options.metricsListen, () => latest);
  const onProgress = (p: RewrapProgress): void => {
    latest = rewrapMetricsText(p, Date.now());
    if (options.metricsFile !== undefined) writeMetrics(options.metricsFile, latest);
    if (tty) process.stderr.write(`\r${bar(p)}`);
    else process.stdout.write(`${JSON.stringify({ progress: p })}\n`);
  };
  let result;
  try {
    result = await rewrapAll(store, keks, {
      rate: options.rate,
      pageSize: options.pageSize,
      batch: options.batch,
      checkpointFile: options.checkpointFile,
      onProgress,
      onRetry: (r) => {
        if (tty) process.stderr.write('\n');
        process.stderr.write(`${JSON.stringify({ msg: 'rewrap page retried', ...r })}\n`);
      },
    });
  } finally {
    await new Promise((resolve) => (listener === undefined ? resolve(undefined) : listener.close(resolve)));
  }
  if (tty) process.stderr.write('\n');
  const summary = { kid: result.kid, ...result.counts, resumed: result.resumed, elapsedMs: result.elapsedMs };
  if (result.counts.failed > 0) {
    process.stderr.write(
      `padlock: ${result.counts.failed} row(s) did not verify under any loaded KEK and were left as they are; ` +
        'see docs/operations.md, "Rotating the KEK"\n',
    );
    return { code: 1, result: summary };
  }
  await (await audit()).append(actor, { type: 'kek.rewrap', kid: result.kid, rows: result.counts.rewrapped });
  return { code: 0, result: summary };
}

function bar(p: RewrapProgress): string {
  const width = 30;
  const filled = p.done === null ? 0 : Math.round(p.done * width);
  const percent = p.done === null ? '  ?' : `${Math.round(p.done * 100)}`.padStart(3);
  return (
    `[${p.step}/${REWRAP_PHASES.length} ${p.phase.padEnd(12)}] [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
    `${percent}% ${p.counts.rewrapped} re-wrapped, ${p.counts.current} current, ${p.counts.raced} raced, ` +
    `${p.counts.failed} failed, ${p.rate} rows/s `
  );
}

/**
 * The re-wrap's progress in Prometheus text format (docs/metrics.md, "KEK re-wrap"): for the
 * textfile collector (--metrics-file) and the re-wrap's own listener (--metrics-listen).
 * Before the first page: only the timestamp of the start, so a scrape tells "started" from "absent".
 */
export function rewrapMetricsText(p: RewrapProgress | undefined, now: number): string {
  const lines = [
    '# HELP padlock_kek_rewrap_last_progress_timestamp_seconds When the re-wrap last reported (its start before the first page).',
    '# TYPE padlock_kek_rewrap_last_progress_timestamp_seconds gauge',
    `padlock_kek_rewrap_last_progress_timestamp_seconds ${now / 1000}`,
  ];
  if (p === undefined) return `${lines.join('\n')}\n`;
  lines.push(
    '# HELP padlock_kek_rewrap_rows Rows the running KEK re-wrap has handled, by outcome.',
    '# TYPE padlock_kek_rewrap_rows gauge',
    ...Object.entries(p.counts).map(
      ([outcome, n]) => `padlock_kek_rewrap_rows{kid="${p.kid}",outcome="${outcome}"} ${n}`,
    ),
    '# HELP padlock_kek_rewrap_phase The re-wrap phase running (1-5; 5 when done).',
    '# TYPE padlock_kek_rewrap_phase gauge',
    `padlock_kek_rewrap_phase{kid="${p.kid}"} ${p.step}`,
    '# HELP padlock_kek_rewrap_phase_done_ratio How far through its phase the re-wrap is.',
    '# TYPE padlock_kek_rewrap_phase_done_ratio gauge',
    `padlock_kek_rewrap_phase_done_ratio{kid="${p.kid}"} ${p.done ?? 0}`,
    '# HELP padlock_kek_rewrap_rate Rows re-wrapped per second over the last page.',
    '# TYPE padlock_kek_rewrap_rate gauge',
    `padlock_kek_rewrap_rate{kid="${p.kid}"} ${p.rate}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Written whole and renamed in, for node_exporter's textfile collector. */
function writeMetrics(file: string, text: string): void {
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, file);
}

/** Serves `text()` at /metrics; says where on stderr (stdout carries the progress lines). */
async function serveMetrics(at: { host: string; port: number }, text: () => string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : at.port;
  process.stderr.write(`${JSON.stringify({ msg: 'rewrap metrics listening', host: at.host, port })}\n`);
  return server;
}

/** The checkpoint file's default place: beside the config, one per config. */
export function defaultCheckpoint(configFile: string): string {
  return join(dirname(configFile), 'kek-rewrap.checkpoint.json');
}
