/*
 * The SDK's errors: one class per outcome a caller handles differently, each
 * with a stable `code`. Messages never carry key material, credentials or
 * plaintext, and DecryptionFailed never says why (no oracle).
 */

export type ClientErrorCode =
  | 'KEYCHAIN_SHREDDED'
  | 'KEYCHAIN_PENDING_DELETION'
  | 'LEGAL_HOLD'
  | 'KEYCHAIN_NOT_FOUND'
  | 'PERMISSION_DENIED'
  | 'UNAVAILABLE'
  | 'DECRYPTION_FAILED'
  | 'INVALID_INPUT'
  | 'RECEIPT_INVALID';

/** Base class of every error the SDK throws; `code` is stable across releases. */
export class PadlockClientError extends Error {
  readonly code: ClientErrorCode;

  constructor(code: ClientErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = 'PadlockClientError';
  }
}

/**
 * The user's keys for this data are destroyed: treat the data as deleted.
 * Never retry, never fall back to another copy.
 *
 * @example
 *   try { await padlock.decrypt(userId, record) } catch (e) { if (e instanceof KeychainShredded) deleteRecord() }
 */
export class KeychainShredded extends PadlockClientError {
  /** The shredded category, when only one category is shredded (an opt-out). */
  readonly category: string | undefined;

  constructor(category?: string) {
    super(
      'KEYCHAIN_SHREDDED',
      category === undefined
        ? "the user's keychain is shredded; treat the data as deleted"
        : `the user's "${category}" keys are shredded; treat the data as deleted`,
    );
    this.name = 'KeychainShredded';
    this.category = category;
  }
}

/**
 * The user's keys are withheld: a shred is scheduled and its request chose not
 * to serve them during the grace period. The data is not gone yet (a cancel
 * brings the keys back), but must not be read now.
 */
export class KeychainPendingDeletion extends PadlockClientError {
  constructor() {
    super('KEYCHAIN_PENDING_DELETION', "the user's keys are withheld until a scheduled shred (or its cancel)");
    this.name = 'KeychainPendingDeletion';
  }
}

/** A legal hold forbids this shred; it may run after the hold is released. */
export class LegalHold extends PadlockClientError {
  constructor(message: string) {
    super('LEGAL_HOLD', message);
    this.name = 'LegalHold';
  }
}

/** The user has no keychain (or no key in the category): create it at signup with createKeychain. */
export class KeychainNotFound extends PadlockClientError {
  readonly category: string | undefined;

  constructor(category?: string) {
    super(
      'KEYCHAIN_NOT_FOUND',
      category === undefined ? 'the user has no keychain' : `the user has no key in category "${category}"`,
    );
    this.name = 'KeychainNotFound';
    this.category = category;
  }
}

/** The service's credential was refused, or it may not do this (read a category, create, shred). */
export class PermissionDenied extends PadlockClientError {
  /** The server's error code (UNAUTHENTICATED, PERMISSION_DENIED), when the server answered. */
  readonly serverCode: string | undefined;

  constructor(message: string, serverCode?: string) {
    super('PERMISSION_DENIED', message);
    this.name = 'PermissionDenied';
    this.serverCode = serverCode;
  }
}

/** One failed attempt of a request: which endpoint, and what went wrong. */
export interface FailedAttempt {
  readonly group: string;
  readonly url: string;
  /** ECONNREFUSED, TIMEOUT, HTTP_503 OVERLOADED, ... */
  readonly reason: string;
}

/**
 * No endpoint group answered within the deadline (connection errors,
 * timeouts, 5xx), or the client is closed. Padlock fails fast; whether to
 * retry later is the caller's decision.
 */
export class Unavailable extends PadlockClientError {
  readonly attempts: readonly FailedAttempt[];

  constructor(message: string, attempts: readonly FailedAttempt[] = []) {
    const detail = attempts.map((a) => `${a.group} ${a.url}: ${a.reason}`).join('; ');
    super('UNAVAILABLE', detail === '' ? message : `${message} (${detail})`);
    this.name = 'Unavailable';
    this.attempts = attempts;
  }
}

/**
 * The ciphertext cannot be decrypted with this user's keys: tampered,
 * truncated, not an envelope, made for another user, category or service, or
 * under a key version the user does not have. One error and one message for
 * all of them, so a caller (or an attacker behind one) learns nothing more.
 */
export class DecryptionFailed extends PadlockClientError {
  constructor() {
    super('DECRYPTION_FAILED', 'decryption failed');
    this.name = 'DecryptionFailed';
  }
}

/** A bad argument or option; the message names it precisely. Nothing was sent. */
export class InvalidInput extends PadlockClientError {
  constructor(message: string) {
    super('INVALID_INPUT', message);
    this.name = 'InvalidInput';
  }
}

/** A deletion receipt that does not verify with Padlock's published keys; `reason` says which check failed. */
export class ReceiptInvalid extends PadlockClientError {
  constructor(readonly reason: string) {
    super('RECEIPT_INVALID', `the receipt does not verify: ${reason}`);
    this.name = 'ReceiptInvalid';
  }
}
