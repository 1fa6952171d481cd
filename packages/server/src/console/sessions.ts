import { PadlockError } from '@padlock/core';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Service, ServiceRegistry } from '../services.js';
import type { ConsoleAssets } from './assets.js';

/*
 * Console sessions (docs/console.md). An operator signs in once with its
 * credential; the browser then holds only a random session token in an
 * HttpOnly, SameSite=Strict cookie (Secure, and __Host- named, under TLS).
 * The server keeps a hash of the token, never the token or the credential.
 * Every request rechecks the credential it was made with: a revoked credential
 * or a revoked admin right ends its sessions at the next registry refresh.
 * A request that changes state must also carry the session's CSRF token in
 * X-Padlock-CSRF, which a page of another origin cannot read or send.
 */

const TOKEN_BYTES = 32;
const CSRF_HEADER = 'x-padlock-csrf';
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** What a request authenticated by a session carries. */
export interface ConsoleSession {
  readonly service: Service;
  readonly csrfToken: string;
  readonly expiresAt: number;
  /** The hash of the token: the key to sign out with; never the token itself. */
  readonly key: string;
}

export interface ConsoleContext {
  readonly sessions: ConsoleSessions;
  readonly assets: ConsoleAssets;
}

export interface SessionOptions {
  readonly ttlMs: number;
  /** Sessions kept at once; the oldest is dropped past it. */
  readonly maxSessions: number;
  /** Served over TLS: the cookie is Secure and __Host- named. */
  readonly secure: boolean;
}

interface Entry {
  readonly serviceId: string;
  readonly credentialId: string;
  readonly csrfToken: string;
  readonly expiresAt: number;
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** The value of one cookie in a Cookie header (RFC 6265 section 5.4); undefined when absent or sent twice. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let found: string | undefined;
  // Several Cookie fields reach us joined with ", " (parser.ts): split on both.
  for (const pair of header.split(/[;,]/)) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    if (found !== undefined) return undefined;
    found = pair.slice(eq + 1).trim();
  }
  return found;
}

export class ConsoleSessions {
  readonly #sessions = new Map<string, Entry>();
  readonly cookieName: string;

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly options: SessionOptions,
    private readonly now: () => number = Date.now,
  ) {
    // RFC 6265bis section 4.1.3.2: a __Host- cookie is Secure, host-only and Path=/, so no subdomain can set it.
    this.cookieName = options.secure ? '__Host-padlock-console' : 'padlock-console';
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Signs in with an operator credential (the text after "Bearer "): a new
   * session, its token for the cookie and its CSRF token for the page. Any bad
   * credential is UNAUTHENTICATED, as on every route; a good one without the
   * admin right is PERMISSION_DENIED, so a service's credential never opens a
   * session.
   */
  signIn(credential: string): { token: string; session: ConsoleSession } {
    const service = this.registry.authenticate(`Bearer ${credential}`);
    if (service === undefined) throw new PadlockError('UNAUTHENTICATED');
    if (service.permissions.admin !== true) {
      throw new PadlockError('PERMISSION_DENIED', 'only an operator credential (the admin right) may sign in');
    }
    const credentialId = credential.split('.')[2] ?? '';
    const now = this.now();
    this.#sweep(now);
    while (this.#sessions.size >= this.options.maxSessions) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const entry: Entry = {
      serviceId: service.serviceId,
      credentialId,
      csrfToken: randomBytes(TOKEN_BYTES).toString('base64url'),
      expiresAt: now + this.options.ttlMs,
    };
    const key = hashToken(token);
    this.#sessions.set(key, entry);
    return { token, session: { service, csrfToken: entry.csrfToken, expiresAt: entry.expiresAt, key } };
  }

  /**
   * The session a request's cookie names, or undefined (no cookie, unknown,
   * expired, credential revoked, admin right gone). A state-changing method
   * without the session's CSRF header throws CSRF_TOKEN_INVALID.
   */
  authenticate(headers: ReadonlyMap<string, string>, method: string): ConsoleSession | undefined {
    const token = cookieValue(headers.get('cookie'), this.cookieName);
    if (token === undefined || !/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    const key = hashToken(token);
    const entry = this.#sessions.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.#sessions.delete(key);
      return undefined;
    }
    const service = this.registry.withLiveCredential(entry.serviceId, entry.credentialId);
    if (service?.permissions.admin !== true) {
      this.#sessions.delete(key);
      return undefined;
    }
    if (!SAFE_METHODS.has(method)) {
      const sent = Buffer.from(headers.get(CSRF_HEADER) ?? '');
      const expected = Buffer.from(entry.csrfToken);
      if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
        throw new PadlockError('CSRF_TOKEN_INVALID');
      }
    }
    return { service, csrfToken: entry.csrfToken, expiresAt: entry.expiresAt, key };
  }

  signOut(session: ConsoleSession): void {
    this.#sessions.delete(session.key);
  }

  /** The Set-Cookie value that gives the browser its session. */
  cookie(token: string, expiresAt: number): string {
    const maxAge = Math.max(0, Math.ceil((expiresAt - this.now()) / 1000));
    return `${this.cookieName}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${this.options.secure ? '; Secure' : ''}`;
  }

  /** The Set-Cookie value that removes it. */
  clearCookie(): string {
    return `${this.cookieName}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${this.options.secure ? '; Secure' : ''}`;
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#sessions) if (entry.expiresAt <= now) this.#sessions.delete(key);
  }
}
