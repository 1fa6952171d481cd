import { isCategory, isServiceId, isUserId, PadlockError, SecretBytes } from '@padlock/core';
import {
  loadConfig,
  loadKeks,
  newCredential,
  newServiceRecord,
  openStore,
  Lifecycle,
  Metrics,
  createLogger,
  tlsIdentityProblem,
  ServiceWriter,
  CassandraKeyStore,
  schemaStatements,
  offlineKeyService,
  rotateSigningKey,
  verifyReceipt,
  verifyAudit,
  exportAudit,
  InvalidSignature,
  ReceiptSigner,
  type AuditLog,
  type JsonWebKeySet,
  type KeyService,
  type KeyStore,
  holdJson,
  scheduleJson,
  type PadlockConfig,
  type ServicePermissions,
} from '@padlock/server';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  BackupUsageError,
  createBackup,
  journaledShred,
  replayCommand,
  restoreBackup,
  statusCommand,
} from './backup.js';
import {
  activateKek,
  addKek,
  defaultCheckpoint,
  kekStatus,
  KekUsageError,
  rekeyJournal,
  retireKek,
  rewrapCommand,
} from './kek.js';
import { runScheduler, serve } from './serve.js';
import { DeletionCanary } from './canary.js';

export class UsageError extends Error {
  constructor(
    message: string,
    readonly help = '',
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | string[] | undefined>;

interface Command {
  readonly name: string;
  readonly args: string;
  readonly summary: string;
  readonly options: Options;
  readonly optionHelp: readonly string[];
  run(values: Values, positionals: string[]): Promise<number>;
}

/** The default of `padlock kek rewrap --rate` (docs/operations.md, "Rotating the KEK"; bench/rewrap.mjs). */
const DEFAULT_REWRAP_RATE = 2000;

const DEFAULT_DIR = '.padlock';
const CONFIG_OPTION: Options = { config: { type: 'string', short: 'c' } };
const CONFIG_HELP = `--config, -c FILE   config file (default: $PADLOCK_CONFIG or ${DEFAULT_DIR}/padlock.json)`;
const CHECKPOINT_OPTION: Options = { 'checkpoint-every': { type: 'string' } };
const CHECKPOINT_HELP =
  '--checkpoint-every N  entries between saved positions and progress lines on stderr (default 500)';

function checkpointEvery(values: Values): number {
  const n = Number(values['checkpoint-every'] ?? 500);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new UsageError('--checkpoint-every must be 1-1000000');
  return n;
}

const RIGHTS_OPTIONS: Options = {
  read: { type: 'string' },
  create: { type: 'boolean' },
  rotate: { type: 'boolean' },
  shred: { type: 'boolean' },
  hold: { type: 'boolean' },
  admin: { type: 'boolean' },
};
const TLS_IDENTITY_OPTION: Options = { 'tls-identity': { type: 'string', multiple: true } };
const TLS_IDENTITY_HELP =
  '--tls-identity ID   a TLS client identity mapped to the service (URI SAN or subject); repeatable';

function tlsIdentities(values: Values): string[] {
  const given = values['tls-identity'];
  return Array.isArray(given) ? given : [];
}

/** Refuses identities that are malformed, repeated, or another service's. */
async function checkTlsIdentities(store: KeyStore, serviceId: string, identities: readonly string[]): Promise<void> {
  if (identities.length === 0) return;
  const problem = tlsIdentityProblem(serviceId, identities, await store.listServices());
  if (problem !== undefined) throw new UsageError(problem);
}

const RIGHTS_HELP = [
  '--read a,b          categories whose derived keys the service may read',
  '--create            may create keychains',
  '--rotate            may rotate categories',
  '--shred             may shred keychains and categories, and schedule and cancel shreds',
  '--hold              may place and release legal holds',
  '--admin             an operator: the console and service admin, never key bytes (not with --read/--create/--rotate)',
];

function configPath(values: Values): string {
  const given = values['config'];
  return resolve(
    typeof given === 'string' ? given : (process.env['PADLOCK_CONFIG'] ?? join(DEFAULT_DIR, 'padlock.json')),
  );
}

interface CliProofs {
  readonly keys: KeyService;
  readonly audit: AuditLog;
  /** Service changes through the row MACs, each appended to the audit log. */
  readonly writer: ServiceWriter;
}

const proofsOfStore = new WeakMap<KeyStore, CliProofs>();

/**
 * Who the CLI's actions name (audit entries, receipts, holds and schedules): `operator:<login>`, the
 * form keys.ts's ShredOptions documents for the CLI.
 */
function cliActor(): string {
  let login = 'unknown';
  try {
    login = userInfo().username;
  } catch {
    // No passwd entry (a container's uid): the entry still says it came from the CLI.
  }
  return `operator:${login}`;
}

/** The lifecycle and audit log for this CLI process (its own audit chain), made on first use. */
async function proofsFor(store: KeyStore, config: PadlockConfig): Promise<CliProofs> {
  let proofs = proofsOfStore.get(store);
  if (proofs === undefined) {
    const { keys, audit } = await offlineKeyService(store, config);
    const writer = new ServiceWriter(store, loadKeks(config), { log: audit, actor: cliActor() });
    proofs = { keys, audit, writer };
    proofsOfStore.set(store, proofs);
  }
  return proofs;
}

/** Signs the head of this process's audit chain, if it has one, before the store closes. */
async function closeStore(store: KeyStore): Promise<void> {
  try {
    await proofsOfStore.get(store)?.audit.checkpoint();
  } finally {
    await store.close();
  }
}

async function withStore<T>(values: Values, work: (store: KeyStore, config: PadlockConfig) => Promise<T>): Promise<T> {
  const config = loadConfig(configPath(values));
  const store = await openStore(
    config,
    createLogger('warn', (l) => process.stderr.write(l)),
  );
  try {
    return await work(store, config);
  } finally {
    await closeStore(store);
  }
}

/** Reads a JSON file named on the command line; a clear error when it is not there or not JSON. */
function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${what} ${path} is not JSON`);
  }
}

function one(positionals: string[], names: readonly string[]): string[] {
  if (positionals.length !== names.length) {
    throw new UsageError(
      `expected ${names.map((n) => `<${n}>`).join(' ') || 'no arguments'}, got ${positionals.length} argument(s)`,
    );
  }
  return positionals;
}

function checkServiceId(id: string): string {
  if (!isServiceId(id))
    throw new UsageError(
      `service id "${String(id)}" must be 2-64 characters of a-z, 0-9 and -, starting with a letter`,
    );
  return id;
}

function checkUserId(id: string): string {
  if (!isUserId(id))
    throw new UsageError(
      `user id "${String(id)}" must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit`,
    );
  return id;
}

function readList(value: unknown, config: PadlockConfig): string[] {
  if (typeof value !== 'string') return [];
  const list = value.split(',').filter((c) => c !== '');
  for (const c of list) {
    if (!isCategory(c) || !config.categories.includes(c)) {
      throw new UsageError(`category "${c}" is not one of the configured categories: ${config.categories.join(', ')}`);
    }
  }
  return list;
}

/** Who the CLI acts as in schedules, holds and shreds: the operator's login name. */
function cliLog(): ReturnType<typeof createLogger> {
  return createLogger('warn', (l) => process.stderr.write(l));
}

/** Holds and schedules from the CLI: the same KeyService (hold check, receipts) and audit chain as its shreds. */
function withLifecycle<T>(
  values: Values,
  work: (lifecycle: { keys: KeyService; lifecycle: Lifecycle }, config: PadlockConfig) => Promise<T>,
): Promise<T> {
  return withStore(values, async (store, config) => {
    const { keys, audit } = await proofsFor(store, config);
    const lifecycle = new Lifecycle(store, loadKeks(config), keys, new Metrics(), cliLog(), audit);
    return work({ keys, lifecycle }, config);
  });
}

/** --category: one configured category, or undefined for the whole keychain. */
function oneCategory(values: Values, config: PadlockConfig): string | undefined {
  const category = typeof values['category'] === 'string' ? values['category'] : undefined;
  if (category !== undefined && (category.includes(',') || readList(category, config).length !== 1)) {
    throw new UsageError(`--category takes one of the configured categories: ${config.categories.join(', ')}`);
  }
  return category;
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Writes a dev config and a fresh KEK (mode 0600) into `dir`; refuses to overwrite. */
export function initDirectory(
  dir: string,
  port: number,
  options: { console?: boolean } = {},
): { configFile: string; kekFile: string } {
  const configFile = join(dir, 'padlock.json');
  const kekFile = join(dir, 'kek-1.bin');
  if (existsSync(configFile) || existsSync(kekFile)) {
    throw new UsageError(`${dir} already holds a Padlock config or KEK; refusing to overwrite it`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kek = SecretBytes.random(32);
  writeFileSync(kekFile, kek.expose(), { mode: 0o600, flag: 'wx' });
  kek.wipe();
  const config = {
    listen: { host: '127.0.0.1', port },
    categories: ['profile', 'payments', 'advertising'],
    keks: { active: 'kek-1', files: [{ kid: 'kek-1', path: 'kek-1.bin' }] },
    store: { kind: 'sqlite', sqlite: { path: 'padlock.db' } },
    maxStalenessSeconds: 30,
    ...(options.console === true ? { console: { enabled: true } } : {}),
  };
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { configFile, kekFile };
}

const COMMANDS: readonly Command[] = [
  {
    name: 'init',
    args: '',
    summary: 'write a dev config and a new KEK file (mode 0600) into a directory',
    options: { dir: { type: 'string' }, port: { type: 'string' } },
    optionHelp: [
      `--dir DIR           where to write (default: ${DEFAULT_DIR})`,
      '--port N            listen port (default: 8700)',
    ],
    run(values, positionals) {
      one(positionals, []);
      const dir = resolve(typeof values['dir'] === 'string' ? values['dir'] : DEFAULT_DIR);
      const port = Number(values['port'] ?? 8700);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0-65535');
      const { configFile, kekFile } = initDirectory(dir, port);
      print({ config: configFile, kek: kekFile });
      return Promise.resolve(0);
    },
  },
  {
    name: 'migrate',
    args: '',
    summary: 'create or update the store schema, and give MACs to rows written before them (idempotent; needs the KEK)',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    async run(values, positionals) {
      one(positionals, []);
      const config = loadConfig(configPath(values));
      const keks = loadKeks(config);
      const store =
        config.store.kind === 'cassandra'
          ? await CassandraKeyStore.open({ ...config.store.cassandra, createSchema: true })
          : await openStore(
              config,
              createLogger('warn', (l) => process.stderr.write(l)),
            );
      try {
        const macs = await new ServiceWriter(store, keks).migrate();
        const where =
          config.store.kind === 'cassandra'
            ? {
                store: 'cassandra',
                keyspace: config.store.cassandra.keyspace,
                statements: schemaStatements(config.store.cassandra.keyspace, config.store.cassandra.replication),
              }
            : { store: 'sqlite', path: config.store.sqlite.path };
        print({ ...where, macs });
        if (macs.failed.length > 0) {
          process.stderr.write(
            `padlock: ${macs.failed.length} service(s) failed their integrity check and were left alone: ` +
              `${macs.failed.map((f) => `${f.serviceId} (${f.failure.row} row: ${f.failure.reason})`).join(', ')}\n`,
          );
          return 1;
        }
        return 0;
      } finally {
        await store.close();
      }
    },
  },
  {
    name: 'serve',
    args: '',
    summary: 'run the key service',
    options: { ...CONFIG_OPTION, workers: { type: 'string' } },
    optionHelp: [CONFIG_HELP, '--workers N         processes sharing the port (default: 1)'],
    async run(values, positionals) {
      one(positionals, []);
      const workers = Number(values['workers'] ?? 1);
      if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError('--workers must be 1-64');
      return serve(configPath(values), workers);
    },
  },
  {
    name: 'scheduler',
    args: '',
    summary:
      'run only the scheduler of scheduled shreds (no port); `serve` starts one itself unless scheduler.ownProcess is false',
    options: { ...CONFIG_OPTION },
    optionHelp: [CONFIG_HELP],
    async run(values, positionals) {
      one(positionals, []);
      return runScheduler(configPath(values));
    },
  },
  {
    name: 'dev',
    args: '',
    summary: `first run: init ${DEFAULT_DIR}/ and a "demo" service with every right; then serve`,
    options: {},
    optionHelp: [],
    async run(_values, positionals) {
      one(positionals, []);
      const dir = resolve(DEFAULT_DIR);
      const configFile = join(dir, 'padlock.json');
      if (!existsSync(configFile)) {
        initDirectory(dir, 8700, { console: true });
        const config = loadConfig(configFile);
        const keks = loadKeks(config);
        const store = await openStore(config, createLogger('warn'));
        try {
          const now = Date.now();
          const permissions = { read: [...config.categories], create: true, rotate: true, shred: true, hold: true };
          const { writer } = await proofsFor(store, config);
          await writer.create(newServiceRecord(keks, 'demo', permissions, now));
          const { credential, record } = newCredential('demo', now);
          await writer.addCredential('demo', record);
          // Dev only: the tour needs the credential in a file; production credentials are printed once.
          writeFileSync(join(dir, 'demo.credential'), `${credential}\n`, { mode: 0o600, flag: 'wx' });
          // The console's operator: shred and hold, never a right that reads keys (docs/console.md).
          const operatorRights = { read: [], create: false, rotate: false, shred: true, hold: true, admin: true };
          await writer.create(newServiceRecord(keks, 'operator', operatorRights, now));
          const operator = newCredential('operator', now);
          await writer.addCredential('operator', operator.record);
          writeFileSync(join(dir, 'operator.credential'), `${operator.credential}\n`, { mode: 0o600, flag: 'wx' });
        } finally {
          await closeStore(store);
        }
        process.stderr.write(
          `padlock: wrote ${dir}/ (config, KEK, SQLite store), a "demo" service and an "operator";\n` +
            `their credentials are in ${join(dir, 'demo.credential')} and ${join(dir, 'operator.credential')} ` +
            `(dev only); the console is at http://127.0.0.1:8700/console/\n`,
        );
      }
      return serve(configFile, 1);
    },
  },
  {
    name: 'service create',
    args: '<serviceId>',
    summary: 'register a service; prints its first credential once',
    options: { ...CONFIG_OPTION, ...RIGHTS_OPTIONS, ...TLS_IDENTITY_OPTION },
    optionHelp: [CONFIG_HELP, ...RIGHTS_HELP, TLS_IDENTITY_HELP],
    run: (values, positionals) => {
      const [id] = one(positionals, ['serviceId']) as [string];
      checkServiceId(id);
      return withStore(values, async (store, config) => {
        const identities = tlsIdentities(values);
        await checkTlsIdentities(store, id, identities);
        const permissions: ServicePermissions = {
          read: readList(values['read'], config),
          create: values['create'] === true,
          rotate: values['rotate'] === true,
          shred: values['shred'] === true,
          hold: values['hold'] === true,
          ...(values['admin'] === true ? { admin: true } : {}),
        };
        const now = Date.now();
        const keks = loadKeks(config);
        const { writer } = await proofsFor(store, config);
        if (!(await writer.create(newServiceRecord(keks, id, permissions, now, identities)))) {
          throw new UsageError(`service "${id}" exists already`);
        }
        const { credential, record } = newCredential(id, now);
        await writer.addCredential(id, record);
        print({
          serviceId: id,
          permissions,
          tlsIdentities: identities,
          credentialId: record.credentialId,
          credential,
        });
        process.stderr.write('padlock: the credential is shown once and not stored; keep it now\n');
        return 0;
      });
    },
  },
  {
    name: 'service list',
    args: '',
    summary: 'list services, their rights and live credential ids',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return withStore(values, async (store) => {
        const services = await store.listServices();
        print(
          services.map((s) => ({
            serviceId: s.serviceId,
            permissions: s.permissions,
            tlsIdentities: s.tlsIdentities,
            createdAt: new Date(s.createdAt).toISOString(),
            credentials: s.credentials.map((c) => ({
              credentialId: c.credentialId,
              createdAt: new Date(c.createdAt).toISOString(),
              revokedAt: c.revokedAt === null ? null : new Date(c.revokedAt).toISOString(),
            })),
          })),
        );
        return 0;
      });
    },
  },
  ...(['grant', 'revoke'] as const).map((verb): Command => ({
    name: `service ${verb}`,
    args: '<serviceId>',
    summary: verb === 'grant' ? 'add rights to a service' : 'take rights from a service',
    options: { ...CONFIG_OPTION, ...RIGHTS_OPTIONS },
    optionHelp: [CONFIG_HELP, ...RIGHTS_HELP],
    run: (values, positionals) => {
      const [id] = one(positionals, ['serviceId']) as [string];
      checkServiceId(id);
      return withStore(values, async (store, config) => {
        const service = await store.getService(id);
        if (service === undefined) throw new UsageError(`no service "${id}"`);
        const read = readList(values['read'], config);
        const flag = (name: 'create' | 'rotate' | 'shred' | 'hold' | 'admin'): boolean =>
          values[name] === true ? verb === 'grant' : service.permissions[name] === true;
        if (read.length === 0 && !['create', 'rotate', 'shred', 'hold', 'admin'].some((n) => values[n] === true)) {
          throw new UsageError(`name at least one right to ${verb}`);
        }
        const permissions: ServicePermissions = {
          read:
            verb === 'grant'
              ? config.categories.filter((c) => service.permissions.read.includes(c) || read.includes(c))
              : service.permissions.read.filter((c) => !read.includes(c)),
          create: flag('create'),
          rotate: flag('rotate'),
          shred: flag('shred'),
          hold: flag('hold'),
          ...(flag('admin') ? { admin: true } : {}),
        };
        const { writer } = await proofsFor(store, config);
        await writer.setPermissions(id, permissions, `service.${verb}`);
        print({ serviceId: id, permissions });
        return 0;
      });
    },
  })),
  {
    name: 'service tls-identities',
    args: '<serviceId>',
    summary: "replace a service's TLS client identities (none given: remove them all)",
    options: { ...CONFIG_OPTION, ...TLS_IDENTITY_OPTION },
    optionHelp: [CONFIG_HELP, TLS_IDENTITY_HELP],
    run: (values, positionals) => {
      const [id] = one(positionals, ['serviceId']) as [string];
      checkServiceId(id);
      return withStore(values, async (store, config) => {
        const identities = tlsIdentities(values);
        await checkTlsIdentities(store, id, identities);
        const { writer } = await proofsFor(store, config);
        if (!(await writer.setTlsIdentities(id, identities))) throw new UsageError(`no service "${id}"`);
        print({ serviceId: id, tlsIdentities: identities });
        return 0;
      });
    },
  },
  {
    name: 'service credential-add',
    args: '<serviceId>',
    summary: 'add a credential (for rotation); prints it once',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [id] = one(positionals, ['serviceId']) as [string];
      checkServiceId(id);
      return withStore(values, async (store, config) => {
        const { credential, record } = newCredential(id, Date.now());
        const { writer } = await proofsFor(store, config);
        if (!(await writer.addCredential(id, record))) throw new UsageError(`no service "${id}"`);
        print({ serviceId: id, credentialId: record.credentialId, credential });
        process.stderr.write('padlock: the credential is shown once and not stored; keep it now\n');
        return 0;
      });
    },
  },
  {
    name: 'service credential-revoke',
    args: '<serviceId> <credentialId>',
    summary: 'revoke a credential; servers stop accepting it within services.refreshSeconds',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [id, credentialId] = one(positionals, ['serviceId', 'credentialId']) as [string, string];
      checkServiceId(id);
      return withStore(values, async (store, config) => {
        const { writer } = await proofsFor(store, config);
        if (!(await writer.revokeCredential(id, credentialId, Date.now()))) {
          throw new UsageError(`service "${id}" has no live credential "${credentialId}"`);
        }
        print({ serviceId: id, credentialId, revoked: true });
        return 0;
      });
    },
  },
  {
    name: 'keychain create',
    args: '<userId>',
    summary: "create a user's keychain (idempotent)",
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [userId] = one(positionals, ['userId']) as [string];
      checkUserId(userId);
      return withStore(values, async (store, config) => {
        const { keys } = await proofsFor(store, config);
        const { inserted } = await keys.create(userId, cliActor());
        print({ userId, created: inserted });
        return 0;
      });
    },
  },
  {
    name: 'keychain show',
    args: '<userId>',
    summary: "show a keychain's metadata (never key bytes)",
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [userId] = one(positionals, ['userId']) as [string];
      checkUserId(userId);
      return withStore(values, async (store) => {
        const rows = await store.getKeychain(userId, { fresh: true });
        if (rows.length === 0) throw new PadlockError('KEYCHAIN_NOT_FOUND', `user "${userId}" has no keychain`);
        print({
          userId,
          keys: rows.map((r) => ({
            category: r.category,
            version: r.version,
            state: r.wrapped === null ? 'shredded' : 'active',
            createdAt: new Date(r.createdAt).toISOString(),
            shreddedAt: r.shreddedAt === null ? null : new Date(r.shreddedAt).toISOString(),
          })),
        });
        return 0;
      });
    },
  },
  {
    name: 'keychain schedule-shred',
    args: '<userId>',
    summary: 'schedule the shred of a keychain (or --category) after a grace period; cancellable until it starts',
    options: {
      ...CONFIG_OPTION,
      category: { type: 'string' },
      grace: { type: 'string' },
      at: { type: 'string' },
      withhold: { type: 'boolean' },
    },
    optionHelp: [
      CONFIG_HELP,
      '--category NAME     schedule only this category',
      '--grace SECONDS     execute this many seconds from now (or:)',
      '--at TIME           execute at this ISO 8601 time, e.g. 2027-01-31T00:00:00Z',
      '--withhold          stop serving the keys during the grace period (default: served until the shred)',
    ],
    run: (values, positionals) => {
      const [userId] = one(positionals, ['userId']) as [string];
      checkUserId(userId);
      return withLifecycle(values, async ({ lifecycle }, config) => {
        const category = oneCategory(values, config);
        const grace = values['grace'];
        const at = values['at'];
        if ((grace === undefined) === (at === undefined)) throw new UsageError('give exactly one of --grace and --at');
        let executeAt: number;
        if (typeof grace === 'string') {
          if (!/^\d{1,10}$/.test(grace)) throw new UsageError('--grace takes whole seconds');
          executeAt = Date.now() + Number(grace) * 1000;
        } else {
          executeAt = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,3})?)?(Z|[+-]\d\d:\d\d)$/.test(String(at))
            ? Date.parse(String(at))
            : NaN;
          if (!Number.isFinite(executeAt)) throw new UsageError('--at takes an ISO 8601 time with a zone');
        }
        const schedule = await lifecycle.schedule({
          userId,
          category,
          executeAt,
          serveDuringGrace: values['withhold'] !== true,
          requestedBy: cliActor(),
        });
        print(scheduleJson(schedule, true));
        return 0;
      });
    },
  },
  {
    name: 'keychain cancel',
    args: '<userId> <scheduleId>',
    summary: 'cancel a scheduled shred that no node has started',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [userId, scheduleId] = one(positionals, ['userId', 'scheduleId']) as [string, string];
      checkUserId(userId);
      return withLifecycle(values, async ({ lifecycle }) => {
        print(scheduleJson(await lifecycle.cancel(userId, scheduleId, cliActor()), true));
        return 0;
      });
    },
  },
  {
    name: 'keychain hold',
    args: '<userId>',
    summary: 'place a legal hold on a keychain (or --category): no shred of it runs until released',
    options: { ...CONFIG_OPTION, category: { type: 'string' }, reason: { type: 'string' } },
    optionHelp: [CONFIG_HELP, '--category NAME     hold only this category', '--reason TEXT       why (required)'],
    run: (values, positionals) => {
      const [userId] = one(positionals, ['userId']) as [string];
      checkUserId(userId);
      const reason = values['reason'];
      if (typeof reason !== 'string' || reason.length === 0 || reason.length > 1000)
        throw new UsageError('--reason TEXT (1-1000 characters) is required');
      return withLifecycle(values, async ({ lifecycle }, config) => {
        const hold = await lifecycle.placeHold(userId, oneCategory(values, config), reason, cliActor());
        print(holdJson(hold, true));
        return 0;
      });
    },
  },
  {
    name: 'keychain release',
    args: '<userId> <holdId>',
    summary: 'release a legal hold; schedules that fell due under it then run',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [userId, holdId] = one(positionals, ['userId', 'holdId']) as [string, string];
      checkUserId(userId);
      return withLifecycle(values, async ({ lifecycle }) => {
        print(holdJson(await lifecycle.releaseHold(userId, holdId, cliActor()), true));
        return 0;
      });
    },
  },
  {
    name: 'keychain status',
    args: '<userId>',
    summary: "a keychain's scheduled shreds and legal holds (an edited row shows verified: false)",
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [userId] = one(positionals, ['userId']) as [string];
      checkUserId(userId);
      return withLifecycle(values, async ({ keys, lifecycle }) => {
        await keys.metadata(userId);
        const { schedules, holds } = await lifecycle.status(userId);
        print({
          userId,
          schedules: schedules.map((s) => scheduleJson(s, s.verified)),
          holds: holds.map((h) => holdJson(h, h.verified)),
        });
        return 0;
      });
    },
  },
  {
    name: 'keychain shred',
    args: '<userId>',
    summary: 'shred a whole keychain, or one category with --category',
    options: { ...CONFIG_OPTION, category: { type: 'string' } },
    optionHelp: [CONFIG_HELP, '--category NAME     shred only this category'],
    run: (values, positionals) => {
      const [userId] = one(positionals, ['userId']) as [string];
      checkUserId(userId);
      return withStore(values, async (store, config) => {
        const category = typeof values['category'] === 'string' ? values['category'] : undefined;
        // One configured category: "a,b" or "" would match no row and report a shred of nothing as success.
        if (category !== undefined && (readList(category, config).length !== 1 || category.includes(','))) {
          throw new UsageError(`--category takes one of the configured categories: ${config.categories.join(', ')}`);
        }
        const rows = await store.getKeychain(userId, { fresh: true });
        if (rows.length === 0) throw new PadlockError('KEYCHAIN_NOT_FOUND', `user "${userId}" has no keychain`);
        const { keys } = await proofsFor(store, config);
        // The journal first (backup.ts), then the shred with its receipt and audit entry.
        const { shredded, receipt } = await journaledShred(config, store, userId, category, () =>
          keys.shred(userId, category, { requestedBy: cliActor() }),
        );
        print({
          userId,
          category: category ?? null,
          shredded,
          servedUntilAtMost: `${config.maxStalenessSeconds}s`,
          receipt: { id: receipt.receiptId, jws: receipt.jws },
        });
        return 0;
      });
    },
  },
  {
    name: 'receipt verify',
    args: '<file>',
    summary: 'check a deletion receipt offline against saved public keys (exit 1 when it does not verify)',
    options: { jwks: { type: 'string' } },
    optionHelp: [
      '--jwks FILE         the public keys, as GET /v1/receipts/keys answers them (required)',
      '<file>              the receipt: the compact JWS, or a JSON answer holding it (receipt.jws or jws)',
    ],
    async run(values, positionals) {
      const [file] = one(positionals, ['file']) as [string];
      if (typeof values['jwks'] !== 'string') throw new UsageError('--jwks FILE is required');
      const jwks = readJsonFile(values['jwks'], 'JWKS file') as JsonWebKeySet;
      if (jwks === null || typeof jwks !== 'object' || !Array.isArray(jwks.keys)) {
        throw new UsageError(`JWKS file ${values['jwks']} has no "keys" array`);
      }
      let jws: string;
      try {
        jws = receiptJws(readFileSync(file, 'utf8'));
      } catch (error) {
        throw new UsageError(`cannot read receipt ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      try {
        print({ valid: true, claims: await verifyReceipt(jws, jwks) });
        return 0;
      } catch (error) {
        if (!(error instanceof InvalidSignature)) throw error;
        process.stderr.write(`padlock: the receipt does not verify: ${error.message}\n`);
        print({ valid: false, reason: error.message });
        return 1;
      }
    },
  },
  {
    name: 'receipt keys',
    args: '',
    summary: 'print the receipt verification keys (JWKS, as GET /v1/receipts/keys), for receipt verify --jwks',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return withStore(values, async (store, config) => {
        print((await ReceiptSigner.open(store, loadKeks(config))).jwks);
        return 0;
      });
    },
  },
  {
    name: 'receipt rotate-key',
    args: '',
    summary:
      'make a new receipt signing key; servers sign with it within services.refreshSeconds, old keys stay published',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return withStore(values, async (store, config) => {
        const { audit } = await proofsFor(store, config);
        const key = await rotateSigningKey(store, loadKeks(config));
        await audit.append(cliActor(), { type: 'receipt.rotate-key', kid: key.kid });
        const all = await store.listSigningKeys();
        print({ active: { generation: key.generation, kid: key.kid }, published: all.map((k) => k.kid) });
        return 0;
      });
    },
  },
  {
    name: 'audit verify',
    args: '',
    summary: 'check every audit chain and checkpoint; names the first edited, removed or reordered entry (exit 1)',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return withStore(values, async (store, config) => {
        const receipts = await ReceiptSigner.open(store, loadKeks(config));
        const report = await verifyAudit(store, receipts.jwks);
        print(report);
        if (report.first !== undefined) {
          const f = report.first;
          process.stderr.write(`padlock: audit chain ${f.chain}, entry ${f.seq}: ${f.problem} (${f.detail})\n`);
        }
        return report.ok ? 0 : 1;
      });
    },
  },
  {
    name: 'audit export',
    args: '',
    summary: 'write the audit entries since a time as JSON lines (chain, seq, at, hash, body as stored)',
    options: { ...CONFIG_OPTION, since: { type: 'string' } },
    optionHelp: [CONFIG_HELP, '--since T           an ISO 8601 time or milliseconds since the epoch (default: all)'],
    run: (values, positionals) => {
      one(positionals, []);
      const since = sinceFrom(values['since']);
      return withStore(values, async (store) => {
        for (const row of await exportAudit(store, since)) {
          process.stdout.write(
            `${JSON.stringify({ chain: row.chainId, seq: row.seq, at: new Date(row.at).toISOString(), hash: row.hash, body: row.body })}\n`,
          );
        }
        return 0;
      });
    },
  },
  {
    name: 'backup create',
    args: '<file>',
    summary: 'copy the SQLite store online into a new file (wrapped rows only) with the journal position it covers',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [file] = one(positionals, ['file']) as [string];
      return backupCommand(() => createBackup(loadConfig(configPath(values)), file));
    },
  },
  {
    name: 'backup restore',
    args: '<file>',
    summary: "put a backup in the store's place after replaying the shred journal into it (servers stopped)",
    options: { ...CONFIG_OPTION, ...CHECKPOINT_OPTION },
    optionHelp: [CONFIG_HELP, CHECKPOINT_HELP],
    run: (values, positionals) => {
      const [file] = one(positionals, ['file']) as [string];
      return backupCommand(() => restoreBackup(loadConfig(configPath(values)), file, checkpointEvery(values)));
    },
  },
  {
    name: 'journal replay',
    args: '',
    summary: 'shred again in the store every journal entry it has not applied (idempotent; safe while serving)',
    options: { ...CONFIG_OPTION, ...CHECKPOINT_OPTION },
    optionHelp: [CONFIG_HELP, CHECKPOINT_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return backupCommand(() => replayCommand(loadConfig(configPath(values)), checkpointEvery(values)));
    },
  },
  {
    name: 'journal status',
    args: '',
    summary: "verify the whole shred journal and compare its head with the store's applied position",
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return backupCommand(() => statusCommand(loadConfig(configPath(values))));
    },
  },
  {
    name: 'canary',
    args: '',
    summary: 'create, shred and watch a canary user in a loop: checks every group stops serving it within maxStaleness',
    options: {
      group: { type: 'string', multiple: true },
      'credential-file': { type: 'string' },
      'max-staleness': { type: 'string' },
      interval: { type: 'string' },
      'metrics-listen': { type: 'string' },
      rounds: { type: 'string' },
    },
    optionHelp: [
      '--group NAME=URL        an endpoint group (repeatable; the first one creates and shreds)',
      '--credential-file FILE  a credential of a service that may create, read and shred',
      "--max-staleness S       the groups' deletion bound, seconds (default 30)",
      '--interval S            seconds between rounds (default 60)',
      '--metrics-listen H:P    serve the canary metrics at http://H:P/metrics (default 127.0.0.1:9464)',
      '--rounds N              stop after N rounds (default: run until SIGTERM)',
    ],
    run: (values, positionals) => {
      one(positionals, []);
      return canaryCommand(values);
    },
  },
  {
    name: 'kek add',
    args: '<file>',
    summary: 'add a KEK file (32 bytes, mode 0600) to the config, not yet active; restart the servers to load it',
    options: { ...CONFIG_OPTION, kid: { type: 'string' } },
    optionHelp: [CONFIG_HELP, '--kid KID           its kid (default: the file name without its extension)'],
    run: (values, positionals) => {
      const [file] = one(positionals, ['file']) as [string];
      const kid = typeof values['kid'] === 'string' ? values['kid'] : undefined;
      return kekChange(values, () => addKek(configPath(values), file, kid), 'kek.add');
    },
  },
  {
    name: 'kek activate',
    args: '<kid>',
    summary: 'make a loaded KEK the one new keys are wrapped under; restart the servers, then re-wrap',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [kid] = one(positionals, ['kid']) as [string];
      return kekChange(values, () => activateKek(configPath(values), kid), 'kek.activate');
    },
  },
  {
    name: 'kek rewrap',
    args: '',
    summary: 'move every wrapped key and row MAC to the active KEK, online, rate-limited, resumable',
    options: {
      ...CONFIG_OPTION,
      rate: { type: 'string' },
      'page-size': { type: 'string' },
      batch: { type: 'string' },
      checkpoint: { type: 'string' },
      'metrics-file': { type: 'string' },
      'metrics-listen': { type: 'string' },
    },
    optionHelp: [
      CONFIG_HELP,
      `--rate N            rows written per second at most (default ${DEFAULT_REWRAP_RATE})`,
      '--page-size N       rows read per page and per checkpoint (default 500)',
      '--batch N           rows written at once: one SQLite transaction, or LWTs in parallel (default 32)',
      '--checkpoint FILE   where the position is saved (default: kek-rewrap.checkpoint.json beside the config)',
      '--metrics-file FILE progress in Prometheus text format, rewritten after every page',
      '--metrics-listen H:P serve that progress at http://H:P/metrics while the re-wrap runs',
    ],
    run: async (values, positionals) => {
      one(positionals, []);
      const options = {
        rate: intOption(values, 'rate', DEFAULT_REWRAP_RATE, 1, 1_000_000),
        pageSize: intOption(values, 'page-size', 500, 1, 10_000),
        batch: intOption(values, 'batch', 32, 1, 1000),
        checkpointFile: checkpointFile(values),
        metricsFile: typeof values['metrics-file'] === 'string' ? resolve(values['metrics-file']) : undefined,
        ...(typeof values['metrics-listen'] === 'string' ? { metricsListen: hostPort(values['metrics-listen']) } : {}),
      };
      return withStore(values, async (store, config) => {
        const { code, result } = await rewrapCommand(
          config,
          store,
          options,
          async () => (await proofsFor(store, config)).audit,
          cliActor(),
        );
        print(result);
        return code;
      });
    },
  },
  {
    name: 'kek rekey-journal',
    args: '',
    summary:
      'append a re-key entry to the shred journal under the active KEK, so older KEKs that MACd entries can retire',
    options: CONFIG_OPTION,
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      one(positionals, []);
      return withStore(values, async (store, config) => {
        const result = await rekeyJournal(config);
        if (result['rekeyed'] === true) {
          await (
            await proofsFor(store, config)
          ).audit.append(cliActor(), {
            type: 'kek.rekey-journal',
            kid: String(result['kid']),
            rows: Number(result['covered']),
          });
        }
        print(result);
        return 0;
      });
    },
  },
  {
    name: 'kek status',
    args: '',
    summary: "rows per kid (keychains, service keys, MACs, signing keys, journal entries) and the re-wrap's progress",
    options: { ...CONFIG_OPTION, checkpoint: { type: 'string' } },
    optionHelp: [CONFIG_HELP, '--checkpoint FILE   the re-wrap checkpoint to report (default: as kek rewrap)'],
    run: (values, positionals) => {
      one(positionals, []);
      return withStore(values, async (store, config) => {
        print(await kekStatus(config, store, checkpointFile(values)));
        return 0;
      });
    },
  },
  {
    name: 'kek retire',
    args: '<kid>',
    summary: 'take a KEK out of the config; refused while it is active or any row or journal entry uses it',
    options: { ...CONFIG_OPTION, checkpoint: { type: 'string' } },
    optionHelp: [CONFIG_HELP],
    run: (values, positionals) => {
      const [kid] = one(positionals, ['kid']) as [string];
      return withStore(values, async (store, config) => {
        const result = await kekUsage(() => retireKek(configPath(values), config, store, kid, checkpointFile(values)));
        await (await proofsFor(store, config)).audit.append(cliActor(), { type: 'kek.retire', kid });
        print(result);
        return 0;
      });
    },
  },
];

function seconds(values: Values, name: string, fallback: number): number {
  const n = Number(values[name] ?? fallback);
  if (!Number.isFinite(n) || n <= 0 || n > 86400)
    throw new UsageError(`--${name} must be a number of seconds, 0-86400`);
  return n;
}

/** --metrics-listen's HOST:PORT (port 0: any free port). */
function hostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const port = Number(listen.slice(colon + 1));
  if (colon < 1 || !/^\d+$/.test(listen.slice(colon + 1)) || port > 65535) {
    throw new UsageError('--metrics-listen must be HOST:PORT');
  }
  return { host: listen.slice(0, colon), port };
}

async function canaryCommand(values: Values): Promise<number> {
  const groups = (Array.isArray(values['group']) ? values['group'] : []).map((spec) => {
    const at = spec.indexOf('=');
    const name = spec.slice(0, at);
    const url = spec.slice(at + 1);
    if (at < 1 || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name) || !/^https?:\/\/[^\s]+$/.test(url)) {
      throw new UsageError(
        `--group must be NAME=URL (name: lower-case letters, digits, _ and -), not "${spec.slice(0, 100)}"`,
      );
    }
    return { name, url };
  });
  if (groups.length === 0) throw new UsageError('at least one --group is needed');
  const file = values['credential-file'];
  if (typeof file !== 'string') throw new UsageError('--credential-file is needed');
  const credential = readFileSync(file, 'utf8').trim();
  const { host, port } = hostPort(String(values['metrics-listen'] ?? '127.0.0.1:9464'));
  const rounds = values['rounds'] === undefined ? Infinity : Number(values['rounds']);
  if (!(rounds === Infinity || (Number.isInteger(rounds) && rounds > 0)))
    throw new UsageError('--rounds must be a positive integer');
  const canary = new DeletionCanary({
    groups,
    credential,
    maxStalenessMs: seconds(values, 'max-staleness', 30) * 1000,
  });
  const intervalMs = seconds(values, 'interval', 60) * 1000;
  const server = await canary.listen(port, host);
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ msg: 'canary listening', port: typeof address === 'object' && address !== null ? address.port : port })}\n`,
  );
  let stopping = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopping = true;
    wake?.();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  let failed = 0;
  try {
    for (let round = 0; round < rounds && !stopping; round++) {
      const outcomes = await canary.round();
      if (outcomes.some((o) => o.failure !== undefined)) failed++;
      process.stdout.write(`${JSON.stringify({ msg: 'canary round', time: new Date().toISOString(), outcomes })}\n`);
      if (round + 1 < rounds && !stopping) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, intervalMs).unref();
        });
      }
    }
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    await new Promise((resolve) => server.close(resolve));
  }
  return failed === 0 ? 0 : 1;
}

function intOption(values: Values, name: string, fallback: number, min: number, max: number): number {
  const given = values[name];
  if (given === undefined) return fallback;
  const n = Number(given);
  if (typeof given !== 'string' || !/^\d+$/.test(given) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number ${min}-${max}`);
  }
  return n;
}

function checkpointFile(values: Values): string {
  const given = values['checkpoint'];
  return typeof given === 'string' ? resolve(given) : defaultCheckpoint(configPath(values));
}

async function kekUsage<T>(work: () => Promise<T> | T): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof KekUsageError) throw new UsageError(error.message);
    throw error;
  }
}

/** A config change to the KEKs, then its audit entry (appended with the KEKs loaded before the change). */
function kekChange(
  values: Values,
  change: () => { added: string } | { active: string },
  type: 'kek.add' | 'kek.activate',
): Promise<number> {
  return withStore(values, async (store, config) => {
    const proofs = await proofsFor(store, config);
    const result = await kekUsage(change);
    const kid = 'added' in result ? result.added : result.active;
    await proofs.audit.append(cliActor(), { type, kid });
    print(result);
    return 0;
  });
}

async function backupCommand(work: () => Promise<Record<string, unknown>>): Promise<number> {
  try {
    print(await work());
    return 0;
  } catch (error) {
    if (error instanceof BackupUsageError) throw new UsageError(error.message);
    throw error;
  }
}

/** The JWS in a receipt file: the bare compact JWS, or a JSON answer with receipt.jws or jws. */
function receiptJws(text: string): string {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return trimmed;
  try {
    const parsed = JSON.parse(trimmed) as { jws?: unknown; receipt?: { jws?: unknown } };
    const jws = parsed.receipt?.jws ?? parsed.jws;
    if (typeof jws === 'string') return jws;
  } catch {
    // Not JSON after all: verification will say the JWS is malformed.
  }
  throw new UsageError('the receipt file is JSON without a "jws" or "receipt.jws" string');
}

function sinceFrom(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'string') throw new UsageError('--since takes one time');
  const text = value;
  const at = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(at)) throw new UsageError(`--since "${text}" is neither an ISO 8601 time nor milliseconds`);
  return at;
}

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.args}`.length));
  return [
    'usage: padlock <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(width)}  ${c.summary}`),
    '',
    'padlock <command> --help shows its options; padlock --version, the version.',
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [
    `usage: padlock ${command.name} ${command.args}`.trimEnd(),
    '',
    command.summary,
    '',
    ...command.optionHelp.map((l) => `  ${l}`),
  ].join('\n');
}

/** Runs the CLI; returns the exit code, or throws UsageError (exit 2) or another error (exit 1). */
/** This package's version, from its package.json (dist/commands.js sits one level below it). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function run(argv: readonly string[]): Promise<number> {
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(`padlock ${version()}\n`);
    return 0;
  }
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(`${usage()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === `${argv[0]} ${argv[1]}`) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (command === undefined) throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}"`, usage());
  const rest = argv.slice(command.name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${commandHelp(command)}\n`);
    return 0;
  }
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...rest], options: command.options, allowPositionals: true, strict: true }) as {
      values: Values;
      positionals: string[];
    };
  } catch (error) {
    throw new UsageError((error as Error).message, commandHelp(command));
  }
  try {
    return await command.run(parsed.values, parsed.positionals);
  } catch (error) {
    if (error instanceof UsageError && error.help === '') throw new UsageError(error.message, commandHelp(command));
    throw error;
  }
}
