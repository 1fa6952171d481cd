import { PadlockError, type KekRing } from '@padlock/core';
import type { AuditLog } from '../audit.js';
import { operatorRightsProblem, ServiceWriter, verifyService } from '../service-rows.js';
import type { ServiceRegistry } from '../services.js';
import type { KeyStore, ServicePermissions, ServiceRecord } from '../store/types.js';

/*
 * What the service-admin routes (routes/*-service*.ts, *-credential.ts) share: the store,
 * the KEKs that seal service rows, this process's audit chain and its registry, which is
 * reloaded after each change so the change holds on this server at once (elsewhere within
 * services.refreshSeconds, as for the CLI).
 */
export class ServiceAdmin {
  constructor(
    private readonly store: KeyStore,
    private readonly keks: KekRing,
    private readonly audit: AuditLog,
    readonly registry: ServiceRegistry,
    readonly categories: readonly string[],
  ) {}

  /** A writer whose audit entries name `actor` (the operator's service id). */
  writer(actor: string): ServiceWriter {
    return new ServiceWriter(this.store, this.keks, { log: this.audit, actor });
  }

  get keyRing(): KekRing {
    return this.keks;
  }

  list(): Promise<ServiceRecord[]> {
    return this.store.listServices();
  }

  async get(serviceId: string): Promise<ServiceRecord> {
    const record = await this.store.getService(serviceId);
    if (record === undefined) throw new PadlockError('SERVICE_NOT_FOUND', `no service "${serviceId}"`);
    return record;
  }

  /** Whether a stored service's rows verify under the KEK (shown, never acted on when false). */
  verified(record: ServiceRecord): boolean {
    return verifyService(this.keks, record).ok;
  }

  refresh(): Promise<void> {
    return this.registry.refresh();
  }
}

/** A right as the routes name it: create, rotate, shred, hold, admin, or read:<category>. */
export const RIGHT_SCHEMA = {
  type: 'string',
  pattern: '^(create|rotate|shred|hold|admin|read:[a-z][a-z0-9_-]{0,31})$',
};

/** Applies rights named as strings to a set of permissions; unknown categories and operator conflicts are 400. */
export function applyRights(
  base: ServicePermissions,
  rights: readonly string[],
  verb: 'grant' | 'revoke',
  categories: readonly string[],
): ServicePermissions {
  const read = new Set(base.read);
  const flags = {
    create: base.create,
    rotate: base.rotate,
    shred: base.shred,
    hold: base.hold,
    admin: base.admin === true,
  };
  for (const right of rights) {
    if (right.startsWith('read:')) {
      const category = right.slice(5);
      if (!categories.includes(category)) {
        throw new PadlockError('UNKNOWN_CATEGORY', `"${category}" is not one of: ${categories.join(', ')}`);
      }
      if (verb === 'grant') read.add(category);
      else read.delete(category);
    } else {
      flags[right as keyof typeof flags] = verb === 'grant';
    }
  }
  const permissions: ServicePermissions = {
    read: categories.filter((c) => read.has(c)),
    create: flags.create,
    rotate: flags.rotate,
    shred: flags.shred,
    hold: flags.hold,
    ...(flags.admin ? { admin: true } : {}),
  };
  const problem = operatorRightsProblem(permissions);
  if (problem !== undefined) throw new PadlockError('INVALID_PERMISSIONS', problem);
  return permissions;
}

/** A service as the list shows it: rights, credential ids and times; never a verifier or key. */
export function serviceJson(record: ServiceRecord, verified: boolean): Record<string, unknown> {
  const p = record.permissions;
  return {
    serviceId: record.serviceId,
    permissions: {
      read: [...p.read],
      create: p.create,
      rotate: p.rotate,
      shred: p.shred,
      hold: p.hold,
      admin: p.admin === true,
    },
    tlsIdentities: [...record.tlsIdentities],
    createdAt: new Date(record.createdAt).toISOString(),
    verified,
    credentials: record.credentials.map((c) => ({
      credentialId: c.credentialId,
      createdAt: new Date(c.createdAt).toISOString(),
      revokedAt: c.revokedAt === null ? null : new Date(c.revokedAt).toISOString(),
    })),
  };
}
