import { CATEGORY_PATTERN, isCategory, isUserId, PadlockError, USER_ID_PATTERN } from '@padlock/core';
import { internRenderedId } from '../keychain.js';
import type { KeyService } from '../keys.js';
import type { Lifecycle } from '../lifecycle.js';
import type { Metrics } from '../metrics.js';
import type { ConsoleContext, ConsoleSession } from '../console/sessions.js';
import type { ServiceAdmin } from '../console/service-admin.js';
import type { Service } from '../services.js';

/** What every route handler may use. */
export interface AppContext {
  readonly keys: KeyService;
  /** Legal holds and scheduled shreds. */
  readonly lifecycle: Lifecycle;
  readonly metrics: Metrics;
  readonly maxBatch: number;
  /** Runs the readiness checks; see routes/health.ts. */
  readiness(): Promise<{ ready: boolean; checks: Record<string, string> }>;
  openapi(): unknown;
  /** The service registry's writes (the service-admin routes); absent in tests that build their own context. */
  readonly services?: ServiceAdmin;
  /** The operator console (docs/console.md); absent when console.enabled is false. */
  readonly console?: ConsoleContext;
}

export interface RouteRequest {
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly body: unknown;
  /** The authenticated caller; routes with `auth: false` receive undefined. */
  readonly service: Service | undefined;
  /** The console session the caller was authenticated by, when it was one (not a bearer credential). */
  readonly session?: ConsoleSession;
  readonly app: AppContext;
}

export interface Reply {
  readonly status: number;
  /**
   * Sent as is when a Buffer, a BodyWriter (written straight into the answer),
   * or a string with `contentType`; anything else is serialized with JSON.stringify.
   */
  readonly body: unknown;
  readonly contentType?: string;
  /** More header fields of the answer (Allow, Retry-After, WWW-Authenticate). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface QueryParameter {
  readonly name: string;
  readonly description: string;
  readonly schema: object;
}

/** One route: its path, its schemas, its handler and its doc text, in one place. */
export interface Route {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Template with `{name}` parameters, as in OpenAPI. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description: string;
  readonly auth: boolean;
  /**
   * An operator (the admin right: a console session or an operator credential) may call it: metadata
   * and actions that never answer with key bytes. Every other authenticated route refuses operators
   * with OPERATOR_ROUTE_DENIED, in the server, before its handler runs.
   */
  readonly operator?: boolean;
  readonly query?: readonly QueryParameter[];
  /** JSON schema of the body; routes without one take no body. */
  readonly body?: object;
  readonly responses: Readonly<Record<number, string>>;
  handle(request: RouteRequest): Promise<Reply> | Reply;
}

export const USER_ID_SCHEMA = { type: 'string', pattern: USER_ID_PATTERN.source, maxLength: 128 } as const;
export const CATEGORY_SCHEMA = { type: 'string', pattern: CATEGORY_PATTERN.source, maxLength: 32 } as const;

/** Validates a user id from a path or body; `where` names it in the message. */
export function userIdFrom(value: unknown, where: string): string {
  if (!isUserId(value)) {
    throw new PadlockError(
      'INVALID_USER_ID',
      `${where} must be 1-128 characters of letters, digits and ._:@+=-, starting with a letter or digit`,
    );
  }
  return value;
}

/** Validates a category name and checks that it is configured. */
export function categoryFrom(value: unknown, where: string, configured: readonly string[]): string {
  if (!isCategory(value)) {
    throw new PadlockError(
      'INVALID_CATEGORY',
      `${where} must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter`,
    );
  }
  if (!configured.includes(value)) {
    throw new PadlockError('UNKNOWN_CATEGORY', `${where} "${value}" is not one of: ${configured.join(', ')}`);
  }
  return value;
}

/**
 * Every category a service may read, in configured order, computed once per
 * service object (a registry reload makes new ones): most reads name none.
 */
const everyReadable = new WeakMap<Service, CategoryChoice>();

/**
 * Categories chosen for a read, with an id unique to the service and the list
 * (a cache key), and that id's number in the table of kept answers (-1: none
 * are kept for it; see keychain.ts).
 */
export interface CategoryChoice {
  readonly list: readonly string[];
  readonly id: string;
  readonly renderedId: number;
}

function choice(service: Service, list: readonly string[]): CategoryChoice {
  const id = `${service.serviceId}\n${list.join(',')}`;
  return { list, id, renderedId: internRenderedId(id) };
}

/**
 * The categories a read asks for: those named (each validated, no repeats) or,
 * when none are named, every category the service may read. Asking for one it
 * may not read fails the whole request, so no key bytes leave for any category.
 */
export function readableCategories(
  service: Service,
  named: readonly unknown[] | undefined,
  configured: readonly string[],
  where: string,
): CategoryChoice {
  if (named === undefined) {
    let all = everyReadable.get(service);
    if (all === undefined) {
      all = choice(
        service,
        configured.filter((c) => service.readable.has(c)),
      );
      everyReadable.set(service, all);
    }
    if (all.list.length === 0) throw new PadlockError('PERMISSION_DENIED', 'the service may not read any category');
    return all;
  }
  if (named.length === 0) throw new PadlockError('INVALID_REQUEST', `${where} must name at least one category`);
  const categories = named.map((c, i) => categoryFrom(c, `${where}[${i}]`, configured));
  if (new Set(categories).size !== categories.length) {
    throw new PadlockError('INVALID_REQUEST', `${where} names a category twice`);
  }
  const denied = categories.filter((c) => !service.readable.has(c));
  if (denied.length > 0) {
    throw new PadlockError('PERMISSION_DENIED', `the service may not read: ${denied.join(', ')}`);
  }
  return choice(service, categories);
}

/** The parsed `categories` query parameter, or undefined when absent. */
export function categoriesQuery(query: URLSearchParams): string[] | undefined {
  const values = query.getAll('categories');
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new PadlockError('INVALID_QUERY', 'categories must be given once, comma-separated');
  return (values[0] ?? '').split(',');
}

/** The service-admin routes: the caller must be an operator. */
export function requireAdmin(service: Service): void {
  if (service.permissions.admin !== true) {
    throw new PadlockError('PERMISSION_DENIED', 'only an operator (the admin right) may manage services');
  }
}

export function requireRight(service: Service, right: 'create' | 'rotate' | 'shred' | 'hold'): void {
  if (!service.permissions[right]) {
    throw new PadlockError(
      'PERMISSION_DENIED',
      right === 'hold' ? 'the service may not place or release legal holds' : `the service may not ${right} keychains`,
    );
  }
}
