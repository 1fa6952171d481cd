/*
 * The one error registry: a stable code, an HTTP status and a default message
 * per error. docs/errors.md lists every code, and a test fails when one is
 * missing there. Messages never carry key material or credentials.
 */

export const ERRORS = {
  INVALID_JSON: { status: 400, message: 'The request body is not valid JSON' },
  INVALID_REQUEST: { status: 400, message: 'The request does not match its schema' },
  INVALID_USER_ID: { status: 400, message: 'The user id does not match the user id grammar' },
  INVALID_CATEGORY: { status: 400, message: 'The category name does not match the category grammar' },
  UNKNOWN_CATEGORY: { status: 400, message: 'The category is not configured' },
  INVALID_QUERY: { status: 400, message: 'The query string is not valid for this route' },
  BATCH_TOO_LARGE: { status: 400, message: 'The batch holds more user ids than allowed' },
  UNAUTHENTICATED: { status: 401, message: 'A valid credential is required' },
  PERMISSION_DENIED: { status: 403, message: 'The service is not permitted to do this' },
  OPERATOR_ROUTE_DENIED: {
    status: 403,
    message: 'An operator credential or console session may call only metadata and service-admin routes',
  },
  CSRF_TOKEN_INVALID: {
    status: 403,
    message: "A console session request that changes state must carry the session's X-Padlock-CSRF header",
  },
  INVALID_PERMISSIONS: { status: 400, message: 'The rights asked for cannot be held together' },
  ROUTE_NOT_FOUND: { status: 404, message: 'No such route' },
  KEYCHAIN_NOT_FOUND: { status: 404, message: 'The user has no keychain' },
  RECEIPT_NOT_FOUND: { status: 404, message: 'No receipt has that id' },
  SERVICE_NOT_FOUND: { status: 404, message: 'No such service' },
  CREDENTIAL_NOT_FOUND: { status: 404, message: 'The service has no live credential with that id' },
  SERVICE_EXISTS: { status: 409, message: 'A service with that id exists already' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'The method is not allowed on this route' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time' },
  CONCURRENT_UPDATE: {
    status: 409,
    message: 'Another request changed this keychain at the same time; retry if still needed',
  },
  KEYCHAIN_SHREDDED: { status: 410, message: 'The requested keys have been shredded' },
  KEYCHAIN_PENDING_DELETION: {
    status: 410,
    message: 'The requested keys are scheduled for shredding and withheld during the grace period',
  },
  LEGAL_HOLD: { status: 409, message: 'A legal hold forbids shredding this keychain or category' },
  SCHEDULE_NOT_FOUND: { status: 404, message: 'No such scheduled shred' },
  SCHEDULE_NOT_PENDING: {
    status: 409,
    message: 'The scheduled shred is executing, executed or cancelled, and can no longer be cancelled',
  },
  HOLD_NOT_FOUND: { status: 404, message: 'No such legal hold in force' },
  ROW_INTEGRITY: {
    status: 500,
    message: 'A stored hold or schedule failed its integrity check; nothing was changed',
  },
  HEADERS_TOO_LARGE: { status: 431, message: 'The request headers or trailers are larger than allowed' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than allowed' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json' },
  OVERLOADED: { status: 503, message: 'The server is overloaded; the request was shed' },
  DEADLINE_EXCEEDED: { status: 503, message: 'The request did not complete within its deadline' },
  STORE_UNAVAILABLE: { status: 503, message: 'The key store is unavailable' },
  AUDIT_UNAVAILABLE: {
    status: 503,
    message: 'The audit log did not take the entry; the change may be done but is not acknowledged: retry',
  },
  SHUTTING_DOWN: { status: 503, message: 'The server is shutting down' },
  STORE_BEHIND_JOURNAL: {
    status: 503,
    message:
      'The key store is behind the shred journal (restored from a backup?); no key is served until it has caught up',
  },
  JOURNAL_UNAVAILABLE: { status: 503, message: 'The shred journal cannot be written; nothing was shredded' },
  JOURNAL_CORRUPT: { status: 503, message: 'The shred journal does not verify; no key is served' },
  KEK_IN_USE: {
    status: 409,
    message: 'The KEK is active or still wraps or MACs stored rows or journal entries; it cannot be retired',
  },
  INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * An error with a stable code. `message` is safe to return to callers.
 *
 * @example
 *   throw new PadlockError('INVALID_USER_ID', 'userId must be 1-128 characters');
 */
export class PadlockError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: ErrorOptions) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'PadlockError';
    this.code = code;
    this.status = ERRORS[code].status;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/**
 * A wrapped key that does not authenticate: wrong KEK, unknown kid, a blob
 * moved to another row, or corrupted bytes. One error for all of them, so no
 * failure mode is distinguishable from another.
 */
export class UnwrapError extends Error {
  constructor() {
    super('wrapped key failed to authenticate');
    this.name = 'UnwrapError';
  }
}
