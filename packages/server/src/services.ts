import {
  frame,
  hmacSha256,
  isServiceId,
  isTlsIdentity,
  SecretBytes,
  serviceWrapInfo,
  unwrapKey,
  wrapKey,
  type KekRing,
} from '@padlock/core';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { verifyService, type IntegrityFailure, type Verification, type VerifiedService } from './service-rows.js';
import type { CredentialRecord, KeyStore, ServicePermissions, ServiceRecord, ServiceRow } from './store/types.js';

/*
 * Services and their credentials. A credential is
 * "pl1.<serviceId>.<credentialId>.<secret>", the secret 32 random bytes in
 * base64url. Only an HMAC verifier of it is stored, so a copy of the store
 * authenticates no one. Every failure, malformed, unknown or wrong, costs the
 * same work and gives the same answer.
 */

const CREDENTIAL_VERSION = 'pl1';
const CREDENTIAL_ID = /^[0-9a-f]{16}$/;
const SECRET_LENGTH = 32;
const CREDENTIAL_LABEL = 'padlock/v1/credential';

/** A service as the server holds it in memory: derivation key unwrapped, verifiers by credential id. */
export interface Service {
  readonly serviceId: string;
  readonly derivationKey: SecretBytes;
  readonly permissions: ServicePermissions;
  readonly readable: ReadonlySet<string>;
  readonly verifiers: ReadonlyMap<string, Buffer>;
  /** TLS client identities mutual TLS maps to this service (see ServiceRegistry.byTlsIdentity). */
  readonly tlsIdentities: readonly string[];
}

export function credentialVerifier(serviceId: string, credentialId: string, secret: Uint8Array): Buffer {
  return hmacSha256(secret, frame(CREDENTIAL_LABEL, [serviceId, credentialId]));
}

/** Makes a new credential: the string to hand to the service once, and the record to store. */
export function newCredential(
  serviceId: string,
  now: number,
): { credential: string; record: Omit<CredentialRecord, 'mac'> } {
  const credentialId = randomBytes(8).toString('hex');
  const secret = randomBytes(SECRET_LENGTH);
  const record = {
    credentialId,
    verifier: credentialVerifier(serviceId, credentialId, secret),
    createdAt: now,
    revokedAt: null,
  };
  const credential = `${CREDENTIAL_VERSION}.${serviceId}.${credentialId}.${secret.toString('base64url')}`;
  secret.fill(0);
  return { credential, record };
}

/** A new service's row, with a fresh random derivation key wrapped under the active KEK; ServiceWriter.create seals it. */
export function newServiceRecord(
  keks: KekRing,
  serviceId: string,
  permissions: ServicePermissions,
  now: number,
  tlsIdentities: readonly string[] = [],
): Omit<ServiceRow, 'generation' | 'credentialStates' | 'mac'> {
  const key = SecretBytes.random(32);
  const wrappedKey = wrapKey(keks.active, serviceWrapInfo(serviceId), key);
  key.wipe();
  return { serviceId, wrappedKey, permissions, createdAt: now, tlsIdentities: [...tlsIdentities] };
}

/**
 * Checks a service's new TLS identities against the grammar, themselves and
 * every other service; returns the first problem as a sentence, or undefined.
 * One identity must name one service, or a certificate would authenticate as
 * whichever the registry met first.
 */
export function tlsIdentityProblem(
  serviceId: string,
  identities: readonly string[],
  services: readonly Pick<ServiceRecord, 'serviceId' | 'tlsIdentities'>[],
): string | undefined {
  const seen = new Set<string>();
  for (const identity of identities) {
    if (!isTlsIdentity(identity)) {
      return `TLS identity ${JSON.stringify(identity)} must be 1-1024 characters, no control characters, no space at either end`;
    }
    if (seen.has(identity)) return `TLS identity "${identity}" is listed twice`;
    seen.add(identity);
    const owner = services.find((s) => s.serviceId !== serviceId && s.tlsIdentities.includes(identity));
    if (owner !== undefined) return `TLS identity "${identity}" belongs to service "${owner.serviceId}" already`;
  }
  return undefined;
}

interface ParsedCredential {
  readonly serviceId: string;
  readonly credentialId: string;
  readonly secret: Buffer;
}

function parseCredential(header: string | undefined): ParsedCredential | undefined {
  if (header === undefined || header.length > 256 || !header.startsWith('Bearer ')) return undefined;
  const parts = header.slice(7).split('.');
  if (parts.length !== 4 || parts[0] !== CREDENTIAL_VERSION) return undefined;
  const [, serviceId, credentialId, encoded] = parts as [string, string, string, string];
  if (!isServiceId(serviceId) || !CREDENTIAL_ID.test(credentialId) || !/^[A-Za-z0-9_-]{43}$/.test(encoded)) {
    return undefined;
  }
  const secret = Buffer.from(encoded, 'base64url');
  if (secret.length !== SECRET_LENGTH) return undefined;
  return { serviceId, credentialId, secret };
}

const DUMMY_SECRET = randomBytes(SECRET_LENGTH);
const DUMMY_VERIFIER = randomBytes(32);

/**
 * The in-memory service registry, reloaded from the store every
 * `refreshSeconds`: a new or revoked credential takes effect within that time.
 */
export class ServiceRegistry {
  #services = new Map<string, Service>();
  #byTlsIdentity = new Map<string, Service>();
  /** The generation of each service's rows last verified, kept while the process lives. */
  readonly #generations = new Map<string, number>();
  #failing = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #loadedAt = 0;
  /** Bumped by every refresh, so verdicts cached against an older registry are not reused. */
  #generation = 0;

  constructor(
    private readonly store: KeyStore,
    private readonly keks: KekRing,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {}

  get loadedAt(): number {
    return this.#loadedAt;
  }

  /**
   * Reloads every service from the store. A service whose rows fail their
   * MAC check (service-rows.ts) keeps the state this server last verified,
   * neither disabled nor upgraded; one never verified is not loaded. Each
   * failure is counted on every refresh and logged when it starts or changes.
   */
  async refresh(): Promise<void> {
    const records = await this.store.listServices();
    const next = new Map<string, Service>();
    const failing = new Map<string, string>();
    for (const record of records) {
      const previous = this.#services.get(record.serviceId);
      const checked = this.#check(record);
      if (!checked.ok) {
        const failure = checked.failure;
        const reason = `${failure.row}:${failure.reason}`;
        failing.set(record.serviceId, reason);
        this.metrics?.integrityFailures.inc({ row: failure.row, reason: failure.reason });
        if (this.#failing.get(record.serviceId) !== reason) this.#logFailure(record.serviceId, failure, previous);
        if (previous !== undefined) next.set(record.serviceId, previous);
        continue;
      }
      if (this.#failing.has(record.serviceId)) {
        this.log.info('service rows verify again', { serviceId: record.serviceId, generation: record.generation });
      }
      const service = this.#load(checked.service);
      if (service !== undefined) {
        next.set(record.serviceId, service);
        this.#generations.set(record.serviceId, record.generation);
      }
    }
    this.#failing = failing;
    this.#byTlsIdentity = mapTlsIdentities([...next.values()], this.log);
    this.#services = next;
    this.#loadedAt = Date.now();
    this.#generation++;
  }

  /** Services whose rows failed their check at the last refresh, with `row:reason`. */
  get integrityFailures(): ReadonlyMap<string, string> {
    return this.#failing;
  }

  #check(record: ServiceRecord): Verification {
    const verified = verifyService(this.keks, record);
    const seen = this.#generations.get(record.serviceId);
    // Within this process's life a service never goes back to an older generation (a restored row).
    if (verified.ok && seen !== undefined && record.generation < seen) {
      return { ok: false, failure: { row: 'service', reason: 'rollback' } };
    }
    return verified;
  }

  #logFailure(serviceId: string, failure: IntegrityFailure, previous: Service | undefined): void {
    const kept = previous === undefined ? 'service not loaded' : 'keeping its last verified state';
    if (failure.reason === 'unmigrated') {
      this.log.error(`service rows have no MAC; run \`padlock migrate\` with the KEK to add them; ${kept}`, {
        serviceId,
        row: failure.row,
      });
    } else {
      this.log.error(`service rows failed their integrity check (changed without the KEK); ${kept}`, {
        serviceId,
        row: failure.row,
        reason: failure.reason,
      });
    }
  }

  #load({ row: record, credentials }: VerifiedService): Service | undefined {
    let derivationKey: SecretBytes;
    try {
      derivationKey = unwrapKey(this.keks, serviceWrapInfo(record.serviceId), record.wrappedKey);
    } catch {
      this.log.error('service derivation key failed to unwrap; service disabled', { serviceId: record.serviceId });
      return undefined;
    }
    const verifiers = new Map<string, Buffer>();
    for (const c of credentials) if (c.revokedAt === null) verifiers.set(c.credentialId, Buffer.from(c.verifier));
    return {
      serviceId: record.serviceId,
      // Not wiped when replaced: a request may still hold the previous Service across an await.
      derivationKey,
      permissions: record.permissions,
      readable: new Set(record.permissions.read),
      verifiers,
      tlsIdentities: record.tlsIdentities.filter((identity) => {
        if (isTlsIdentity(identity)) return true;
        this.log.error('service has a malformed TLS identity; ignoring it', { serviceId: record.serviceId });
        return false;
      }),
    };
  }

  /** Starts periodic refreshes; a failed refresh keeps the last good registry. */
  start(refreshSeconds: number): void {
    this.#timer = setInterval(() => {
      this.refresh().catch((error: unknown) =>
        this.log.warn('service registry refresh failed; keeping the previous one', { error: String(error) }),
      );
    }, refreshSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  get generation(): number {
    return this.#generation;
  }

  /**
   * The service a TLS client identity (a certificate's URI SAN or subject,
   * compared exactly) is mapped to, or undefined. An identity two services
   * claim maps to neither.
   */
  byTlsIdentity(identity: string): Service | undefined {
    return this.#byTlsIdentity.get(identity);
  }

  /** The service, when it is loaded and the credential is one of its live ones (a console session's recheck). */
  withLiveCredential(serviceId: string, credentialId: string): Service | undefined {
    const service = this.#services.get(serviceId);
    return service?.verifiers.has(credentialId) === true ? service : undefined;
  }

  /** The service an Authorization header authenticates, or undefined for any bad credential. */
  authenticate(header: string | undefined): Service | undefined {
    const parsed = parseCredential(header);
    const service = parsed === undefined ? undefined : this.#services.get(parsed.serviceId);
    const expected = (parsed && service?.verifiers.get(parsed.credentialId)) ?? DUMMY_VERIFIER;
    const actual = credentialVerifier(
      parsed?.serviceId ?? 'unknown',
      parsed?.credentialId ?? '0000000000000000',
      parsed?.secret ?? DUMMY_SECRET,
    );
    parsed?.secret.fill(0);
    const match = timingSafeEqual(actual, expected);
    return match && expected !== DUMMY_VERIFIER ? service : undefined;
  }
}

function mapTlsIdentities(services: readonly Service[], log: Logger): Map<string, Service> {
  const map = new Map<string, Service>();
  const contested = new Set<string>();
  for (const service of services) {
    for (const identity of service.tlsIdentities) {
      const other = map.get(identity);
      if (other !== undefined && other !== service) contested.add(identity);
      else map.set(identity, service);
    }
  }
  for (const identity of contested) {
    const claimants = services.filter((s) => s.tlsIdentities.includes(identity)).map((s) => s.serviceId);
    log.error('a TLS identity is claimed by several services; it authenticates none of them', {
      serviceIds: claimants.join(','),
    });
    map.delete(identity);
  }
  return map;
}
