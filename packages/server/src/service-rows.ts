import { isTlsIdentity, serviceWrapInfo, unwrapKey, wrapKey, wrappedKid, type KekRing } from '@padlock/core';
import type { AuditLog } from './audit.js';
import { macRow, rowMacKid, verifyRowMac, type MacField } from './row-mac.js';
import type {
  CredentialRecord,
  CredentialState,
  KeyStore,
  ServicePermissions,
  ServiceRecord,
  ServiceRow,
} from './store/types.js';

/*
 * Service and credential rows under their MACs (docs/spec.md, "Row MAC").
 * What a service may do is only what a MAC'd service row says, and a
 * credential authenticates only when both its own MAC'd row and its
 * service's MAC'd list of credential states say it is live. Every write goes
 * through ServiceWriter, which checks the rows it starts from first, so an
 * edit made behind Padlock's back is never sealed by a later legitimate one.
 */

export function serviceMacFields(row: ServiceRow): MacField[] {
  const p = row.permissions;
  return [
    'service',
    row.serviceId,
    row.wrappedKey,
    [...p.read],
    p.create,
    p.rotate,
    p.shred,
    row.createdAt,
    [...row.tlsIdentities],
    row.generation,
    row.credentialStates.map((s) => [s.credentialId, s.revokedAt]),
    // Rights added after the first sealed release are appended by name, only when granted: rows
    // sealed before them encode (and verify) as they did, and a right set in the database alone
    // changes the encoding, so the MAC fails.
    ...(p.hold ? ['hold'] : []),
    ...(p.admin === true ? ['admin'] : []),
  ];
}

export function credentialMacFields(serviceId: string, c: Omit<CredentialRecord, 'mac'>): MacField[] {
  return ['credential', serviceId, c.credentialId, c.verifier, c.createdAt, c.revokedAt];
}

/** Which row failed and why; logged and counted, never with the row's bytes. */
export interface IntegrityFailure {
  readonly row: 'service' | 'credential';
  /**
   * unmigrated: written before MACs (run `padlock migrate`); bad-mac: edited, copied or
   * forged; revived: a revoked credential's row replaced by an older live one; missing:
   * a credential the service lists has no row; rollback: an older generation than one
   * this server verified before.
   */
  readonly reason: 'unmigrated' | 'bad-mac' | 'revived' | 'missing' | 'rollback';
}

/** A service whose rows all verified: its row, and its credentials with the revocation in force. */
export interface VerifiedService {
  readonly row: ServiceRow;
  readonly credentials: readonly CredentialRecord[];
}

export type Verification =
  { readonly ok: true; readonly service: VerifiedService } | { readonly ok: false; readonly failure: IntegrityFailure };

/**
 * Checks a service record as read from the store. A credential row the
 * service's list does not name is ignored when its MAC holds (a write that
 * lost its race in a store without transactions) and a failure when not.
 */
export function verifyService(keks: KekRing, record: ServiceRecord): Verification {
  const fail = (row: IntegrityFailure['row'], reason: IntegrityFailure['reason']): Verification => ({
    ok: false,
    failure: { row, reason },
  });
  const serviceVerdict = verifyRowMac(keks, serviceMacFields(record), record.mac);
  if (serviceVerdict !== 'ok') return fail('service', serviceVerdict === 'missing' ? 'unmigrated' : 'bad-mac');
  const rows = new Map(record.credentials.map((c) => [c.credentialId, c]));
  const listed = new Set<string>();
  const credentials: CredentialRecord[] = [];
  for (const state of record.credentialStates) {
    listed.add(state.credentialId);
    const row = rows.get(state.credentialId);
    if (row === undefined) return fail('credential', 'missing');
    const verdict = verifyRowMac(keks, credentialMacFields(record.serviceId, row), row.mac);
    if (verdict !== 'ok') return fail('credential', verdict === 'missing' ? 'unmigrated' : 'bad-mac');
    if (state.revokedAt !== null && row.revokedAt === null) return fail('credential', 'revived');
    // A revocation whose row was written but whose service update was not (Cassandra) stands.
    credentials.push({ ...row, revokedAt: state.revokedAt ?? row.revokedAt });
  }
  for (const row of record.credentials) {
    if (listed.has(row.credentialId)) continue;
    if (verifyRowMac(keks, credentialMacFields(record.serviceId, row), row.mac) !== 'ok') {
      return fail('credential', 'bad-mac');
    }
  }
  return { ok: true, service: { row: serviceRow(record), credentials } };
}

/** A record's own row, without its credentials. */
export function serviceRow(record: ServiceRecord): ServiceRow {
  return {
    serviceId: record.serviceId,
    wrappedKey: record.wrappedKey,
    permissions: record.permissions,
    createdAt: record.createdAt,
    tlsIdentities: record.tlsIdentities,
    generation: record.generation,
    credentialStates: record.credentialStates,
    mac: record.mac,
  };
}

/** Seals a service row: its MAC under the active KEK. */
export function sealService(keks: KekRing, row: Omit<ServiceRow, 'mac'>): ServiceRow {
  return { ...row, mac: macRow(keks.active, serviceMacFields({ ...row, mac: null })) };
}

export function sealCredential(keks: KekRing, serviceId: string, c: Omit<CredentialRecord, 'mac'>): CredentialRecord {
  return { ...c, mac: macRow(keks.active, credentialMacFields(serviceId, c)) };
}

/** Why a write was refused; the CLI prints it. */
export class ServiceWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceWriteError';
  }
}

/**
 * An operator (the admin right) reads metadata and acts on it; it never holds a right that hands out
 * key bytes (read; create and rotate answer with derived keys), so a console session or a leaked
 * operator credential can never be turned into one that reads keys (docs/console.md).
 */
export function operatorRightsProblem(p: ServicePermissions): string | undefined {
  if (p.admin !== true) return undefined;
  const keyRights = [
    ...(p.read.length > 0 ? ['read'] : []),
    ...(p.create ? ['create'] : []),
    ...(p.rotate ? ['rotate'] : []),
  ];
  return keyRights.length === 0
    ? undefined
    : `an operator (admin) may not also hold ${keyRights.join(', ')}: those rights return key bytes`;
}

function checkOperatorRights(p: ServicePermissions): void {
  const problem = operatorRightsProblem(p);
  if (problem !== undefined) throw new ServiceWriteError(problem);
}

function describe(serviceId: string, failure: IntegrityFailure): string {
  return failure.reason === 'unmigrated'
    ? `service "${serviceId}" has rows without MACs; run \`padlock migrate\` with the KEK first`
    : `service "${serviceId}" failed its integrity check (${failure.row} row: ${failure.reason}); ` +
        'it was changed without the KEK, so nothing was written (see docs/security.md)';
}

interface Change {
  readonly permissions?: ServicePermissions;
  readonly tlsIdentities?: readonly string[];
  /** Credential rows to write (sealed here), each also set in the service's list of states. */
  readonly credentials?: readonly Omit<CredentialRecord, 'mac'>[];
}

/** What `padlock migrate` did to the service rows. */
export interface MacMigration {
  /** Services whose rows gained MACs (written before MACs). */
  readonly sealed: string[];
  /** Services whose MACs were made again under the active KEK (another kid made them). */
  readonly resealed: string[];
  /** Services already MAC'd under the active KEK. */
  readonly unchanged: number;
  /** Services whose MAC'd rows fail their check: left alone, to be looked into. */
  readonly failed: { readonly serviceId: string; readonly failure: IntegrityFailure }[];
}

const ATTEMPTS = 10;

/** A random pause before another attempt, so writers that lost together do not collide again in step. */
function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
}

/**
 * Every change to services and credentials: reads the current rows, checks
 * them, applies the change, seals the result and writes it conditionally on
 * the generation it read (another writer in between makes it try again).
 *
 * @example
 *   const writer = new ServiceWriter(store, keks);
 *   await writer.create('newsletter', { read: ['profile'], create: false, rotate: false, shred: false, hold: false }, Date.now());
 *   await writer.addCredential('newsletter', record);
 */
export class ServiceWriter {
  /**
   * With `audit`, every change that lands is appended to the audit log as
   * done by `audit.actor`; a change whose entry is not taken rejects
   * AUDIT_UNAVAILABLE (the row is written: repeat the command to record it).
   */
  constructor(
    private readonly store: KeyStore,
    private readonly keks: KekRing,
    private readonly audit?: { readonly log: AuditLog; readonly actor: string },
  ) {}

  /** Creates a sealed service with no credentials; false when the id is taken. */
  async create(row: Omit<ServiceRow, 'generation' | 'credentialStates' | 'mac'>): Promise<boolean> {
    checkOperatorRights(row.permissions);
    const created = await this.store.createService(
      sealService(this.keks, { ...row, generation: 1, credentialStates: [] }),
    );
    if (created) await this.#permissionsChanged('service.create', row.serviceId, row.permissions);
    return created;
  }

  /** False when there is no such service. `event` names the change in the audit log. */
  async setPermissions(
    serviceId: string,
    permissions: ServicePermissions,
    event: 'service.grant' | 'service.revoke' = 'service.grant',
  ): Promise<boolean> {
    checkOperatorRights(permissions);
    const done = await this.#update(serviceId, () => ({ permissions }));
    if (done) await this.#permissionsChanged(event, serviceId, permissions);
    return done;
  }

  async #permissionsChanged(
    type: 'service.create' | 'service.grant' | 'service.revoke',
    serviceId: string,
    p: ServicePermissions,
  ): Promise<void> {
    await this.audit?.log.append(this.audit.actor, {
      type,
      serviceId,
      read: [...p.read],
      create: p.create,
      rotate: p.rotate,
      shred: p.shred,
      ...(p.admin === true ? { admin: true } : {}),
    });
  }

  /** False when there is no such service; throws on a malformed identity (tlsIdentityProblem says which). */
  setTlsIdentities(serviceId: string, tlsIdentities: readonly string[]): Promise<boolean> {
    if (!tlsIdentities.every(isTlsIdentity)) throw new ServiceWriteError('a TLS identity is malformed');
    return this.#update(serviceId, () => ({ tlsIdentities }));
  }

  /** Adds a live credential (from newCredential); false when there is no such service. */
  async addCredential(serviceId: string, credential: Omit<CredentialRecord, 'mac'>): Promise<boolean> {
    const done = await this.#update(serviceId, () => ({ credentials: [{ ...credential, revokedAt: null }] }));
    // The id only: never the verifier, let alone the credential.
    if (done)
      await this.audit?.log.append(this.audit.actor, {
        type: 'credential.add',
        serviceId,
        credentialId: credential.credentialId,
      });
    return done;
  }

  /** Revokes a live credential; false when the service has no such live credential. */
  async revokeCredential(serviceId: string, credentialId: string, at: number): Promise<boolean> {
    const done = await this.#update(serviceId, (current) => {
      const live = current.credentials.find((c) => c.credentialId === credentialId && c.revokedAt === null);
      return live === undefined ? undefined : { credentials: [{ ...live, revokedAt: at }] };
    });
    if (done) await this.audit?.log.append(this.audit.actor, { type: 'credential.revoke', serviceId, credentialId });
    return done;
  }

  /**
   * Gives MACs to every service and credential row written before them, and
   * makes MACs made under another KEK again under the active one. Idempotent.
   * Rows without a MAC are taken as they are: run it once, right after the
   * upgrade, on a store you trust.
   */
  async migrate(options: { readonly sealUnmigrated?: boolean } = {}): Promise<MacMigration> {
    const sealUnmigrated = options.sealUnmigrated ?? true;
    const result: MacMigration = { sealed: [], resealed: [], unchanged: 0, failed: [] };
    let unchanged = 0;
    for (const listed of await this.store.listServices()) {
      for (let attempt = 1; ; attempt++) {
        const record = attempt === 1 ? listed : await this.store.getService(listed.serviceId);
        if (record === undefined) break;
        const outcome = await this.#migrateOne(record, sealUnmigrated);
        if (outcome === 'raced' && attempt < ATTEMPTS) {
          await backoff(attempt);
          continue;
        }
        if (outcome === 'raced') throw new ServiceWriteError(`service "${record.serviceId}" kept changing; try again`);
        if (outcome === 'unchanged') unchanged++;
        else if (outcome === 'sealed') result.sealed.push(record.serviceId);
        else if (outcome === 'resealed') result.resealed.push(record.serviceId);
        else result.failed.push({ serviceId: record.serviceId, failure: outcome });
        break;
      }
    }
    return { ...result, unchanged };
  }

  async #migrateOne(
    record: ServiceRecord,
    sealUnmigrated: boolean,
  ): Promise<'sealed' | 'resealed' | 'unchanged' | 'raced' | IntegrityFailure> {
    const active = this.keks.active.kid;
    let states: CredentialState[];
    let credentials: readonly CredentialRecord[];
    let outcome: 'sealed' | 'resealed';
    if (record.mac === null || record.mac.length === 0) {
      // A KEK re-wrap runs on a live store it need not trust: it never seals what nobody sealed.
      if (!sealUnmigrated) return { row: 'service', reason: 'unmigrated' };
      // Before MACs: the rows as they are, every credential listed with its own revocation.
      states = record.credentials.map((c) => ({ credentialId: c.credentialId, revokedAt: c.revokedAt }));
      credentials = record.credentials;
      outcome = 'sealed';
    } else {
      const verified = verifyService(this.keks, record);
      if (!verified.ok) return verified.failure;
      const kids = [record.mac, ...verified.service.credentials.map((c) => c.mac)].map((m) =>
        m === null ? undefined : rowMacKid(m),
      );
      if (kids.every((kid) => kid === active) && wrappedKid(record.wrappedKey) === active) return 'unchanged';
      states = verified.service.credentials.map((c) => ({ credentialId: c.credentialId, revokedAt: c.revokedAt }));
      credentials = verified.service.credentials;
      outcome = 'resealed';
    }
    // The derivation key moves to the active KEK with its MACs (KEK rotation, docs/operations.md).
    let wrappedKey = record.wrappedKey;
    if (wrappedKid(wrappedKey) !== active) {
      const info = serviceWrapInfo(record.serviceId);
      let key;
      try {
        key = unwrapKey(this.keks, info, wrappedKey);
      } catch {
        return { row: 'service', reason: 'bad-mac' };
      }
      try {
        wrappedKey = wrapKey(this.keks.active, info, key);
      } finally {
        key.wipe();
      }
    }
    const sealed = sealService(this.keks, {
      ...serviceRow(record),
      wrappedKey,
      generation: record.generation + 1,
      credentialStates: states,
    });
    const written = await this.store.updateService(
      sealed,
      record.generation,
      credentials.map((c) => sealCredential(this.keks, record.serviceId, c)),
    );
    return written ? outcome : 'raced';
  }

  async #update(serviceId: string, change: (current: VerifiedService) => Change | undefined): Promise<boolean> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const record = await this.store.getService(serviceId);
      if (record === undefined) return false;
      const verified = verifyService(this.keks, record);
      if (!verified.ok) throw new ServiceWriteError(describe(serviceId, verified.failure));
      const current = verified.service;
      const wanted = change(current);
      if (wanted === undefined) return false;
      const states = new Map(current.credentials.map((c) => [c.credentialId, c.revokedAt]));
      for (const c of wanted.credentials ?? []) states.set(c.credentialId, c.revokedAt);
      const row = current.row;
      const next = sealService(this.keks, {
        ...row,
        permissions: wanted.permissions ?? row.permissions,
        tlsIdentities: wanted.tlsIdentities ?? row.tlsIdentities,
        generation: row.generation + 1,
        credentialStates: [...states].map(([credentialId, revokedAt]) => ({ credentialId, revokedAt })),
      });
      const credentials = (wanted.credentials ?? []).map((c) => sealCredential(this.keks, serviceId, c));
      if (await this.store.updateService(next, row.generation, credentials)) return true;
      await backoff(attempt);
    }
    throw new ServiceWriteError(`service "${serviceId}" kept changing while this write was tried; try again`);
  }
}
