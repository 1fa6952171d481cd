import { PadlockError, SecretBytes } from '@padlock/core';
import cassandra from 'cassandra-driver';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import { ConfigError, type CassandraAuthConfig, type CassandraTlsConfig } from '../config.js';

/*
 * Client-to-node TLS and password login for the Cassandra store (docs/operations.md, "Cassandra
 * over TLS"). Every file is read once, when the store opens, so a missing or bad file stops the
 * start with its path named and nothing of its contents in the message.
 *
 * The driver's own TLS default is rejectUnauthorized: false (lib/connection.js extends it with our
 * options): every setting that makes verification happen is set here explicitly, and tests check
 * the effective options as well as refusals by a real node.
 */

const MAX_PEM_BYTES = 1024 * 1024;
const MAX_PASSWORD_BYTES = 1024;
const NUL = Buffer.of(0);

/** What the driver is given: `sslOptions` and `authProvider` (either may be absent). */
export interface ConnectionSecurity {
  readonly sslOptions?: ConnectionOptions;
  readonly authProvider?: cassandra.auth.AuthProvider;
}

/**
 * Reads the files that `store.cassandra.tls` and `store.cassandra.auth` name and builds the
 * driver's options from them.
 *
 * @example
 *   const { sslOptions, authProvider } = connectionSecurity(config.store.cassandra);
 */
export function connectionSecurity(config: {
  readonly tls?: CassandraTlsConfig | undefined;
  readonly auth?: CassandraAuthConfig | undefined;
}): ConnectionSecurity {
  return {
    ...(config.tls === undefined ? {} : { sslOptions: tlsOptions(config.tls) }),
    ...(config.auth === undefined ? {} : { authProvider: passwordAuth(config.auth) }),
  };
}

function tlsOptions(tls: CassandraTlsConfig): ConnectionOptions {
  const key = tls.keyFile === undefined ? undefined : readKey(tls.keyFile);
  let secureContext: SecureContext;
  try {
    // One context for every connection, made here: OpenSSL keeps its own copy of the key, so the
    // key's bytes are wiped below and are not in the driver's options, where printing them would
    // print the key.
    secureContext = createSecureContext({
      ca: readPem('CA file', tls.caFile, 'CERTIFICATE'),
      minVersion: 'TLSv1.2',
      ...(tls.certFile === undefined || key === undefined
        ? {}
        : { cert: readPem('client certificate file', tls.certFile, 'CERTIFICATE'), key }),
    });
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // OpenSSL's reason ("key values mismatch", "no start line"), never the file's bytes.
    throw new ConfigError(`config.store.cassandra.tls: the files cannot be used: ${(error as Error).message}`);
  } finally {
    key?.fill(0);
  }
  return {
    secureContext,
    rejectUnauthorized: true,
    // Checked against this name instead of the address connected to: the driver finds the other
    // nodes by IP address, so a cluster whose certificates carry a DNS name is checked with one.
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
    // The chain is still checked against the CA; only the name in the certificate is not.
    ...(tls.verifyServerName ? {} : { checkServerIdentity: () => undefined }),
  };
}

function readPem(what: string, path: string, label: string): Buffer {
  const bytes = readBounded(`Cassandra TLS ${what}`, path, MAX_PEM_BYTES, { ownerOnly: false });
  if (!bytes.includes(`-----BEGIN ${label}-----`)) {
    throw new ConfigError(`Cassandra TLS ${what} at ${path} is not a PEM file of ${label} blocks`);
  }
  return bytes;
}

function readKey(path: string): Buffer {
  const bytes = readBounded('Cassandra TLS client key file', path, MAX_PEM_BYTES, { ownerOnly: true });
  if (bytes.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || bytes.includes('Proc-Type: 4,ENCRYPTED')) {
    bytes.fill(0);
    throw new ConfigError(
      `Cassandra TLS client key file at ${path} is encrypted; give it unencrypted, readable by Padlock's user only`,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(bytes.toString('latin1', 0, Math.min(bytes.length, 4096)))) {
    bytes.fill(0);
    throw new ConfigError(`Cassandra TLS client key file at ${path} is not a PEM private key`);
  }
  return bytes;
}

/*
 * The password comes from a file, never from the config itself: config files are copied,
 * committed, pasted into tickets and printed, and a file of its own can be readable by Padlock's
 * user only, which is checked here as for KEK files (kek.ts).
 */
function readPassword(path: string): SecretBytes {
  const bytes = readBounded('Cassandra password file', path, MAX_PASSWORD_BYTES, { ownerOnly: true });
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end -= 1;
  if (end > 0 && bytes[end - 1] === 0x0d) end -= 1;
  const password = bytes.subarray(0, end);
  const problem =
    end === 0
      ? 'is empty'
      : password.some((b) => b === 0x00 || b === 0x0a || b === 0x0d)
        ? 'must hold one line (no NUL, CR or LF inside the password)'
        : null;
  if (problem !== null) {
    bytes.fill(0);
    throw new ConfigError(`Cassandra password file at ${path} ${problem}`);
  }
  const secret = SecretBytes.copyOf(password);
  bytes.fill(0);
  return secret;
}

/**
 * Reads a regular file of at most maxBytes (never a device or a FIFO, which could hang the start
 * or fill the heap), through the descriptor it checked; a secret one must not be accessible by
 * group or others.
 */
function readBounded(what: string, path: string, maxBytes: number, { ownerOnly }: { ownerOnly: boolean }): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new ConfigError(`cannot open ${what} at ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`${what} at ${path} is not a regular file`);
    if (ownerOnly && (stat.mode & 0o077) !== 0) {
      throw new ConfigError(
        `${what} at ${path} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
    if (stat.size > maxBytes) throw new ConfigError(`${what} at ${path} is larger than ${maxBytes} bytes`);
    const bytes = Buffer.alloc(stat.size);
    if (readSync(fd, bytes, 0, stat.size, 0) !== stat.size) {
      bytes.fill(0);
      throw new ConfigError(`${what} at ${path} could not be read whole`);
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

function passwordAuth(auth: CassandraAuthConfig): cassandra.auth.AuthProvider {
  return new PasswordFileAuthProvider(auth.username, readPassword(auth.passwordFile));
}

/**
 * The driver's PlainTextAuthProvider (SASL PLAIN, RFC 4616: NUL username NUL password), with the
 * password kept as SecretBytes instead of a string: the token is built from the bytes for each new
 * connection, so no string copy of the password stays in the heap.
 */
export class PasswordFileAuthProvider extends cassandra.auth.PlainTextAuthProvider {
  readonly #username: Buffer;
  readonly #password: SecretBytes;

  constructor(username: string, password: SecretBytes) {
    super(username, '');
    this.#username = Buffer.from(username, 'utf8');
    this.#password = password;
  }

  override newAuthenticator(): cassandra.auth.Authenticator {
    const token = (): Buffer => Buffer.concat([NUL, this.#username, NUL, this.#password.expose()]);
    return {
      initialResponse: (callback: (error: Error | null, token: Buffer) => void) => callback(null, token()),
      // PasswordAuthenticator answers the one token with success or an error, never a challenge.
      evaluateChallenge: (_challenge: Buffer, callback: (error?: Error) => void) =>
        callback(new Error('Cassandra sent a SASL challenge after PLAIN; only PasswordAuthenticator is supported')),
      onAuthenticationSuccess: () => undefined,
    };
  }
}

/**
 * A failed connect as one clear error: each node tried with its reason, and which setting to look
 * at. The driver's own message embeds its inner errors inspected, stack traces and all.
 *
 * @example
 *   await client.connect().catch((error: unknown) => { throw connectFailure(error, options); });
 */
export function connectFailure(error: unknown, config: { readonly tls?: unknown }): unknown {
  if (!(error instanceof cassandra.errors.NoHostAvailableError)) return error;
  const reasons = Object.entries(error.innerErrors as Record<string, unknown>).map(([host, inner]) => {
    const reason = inner instanceof Error ? `${inner.name}: ${inner.message}` : String(inner);
    return `${host}: ${reason.split('\n')[0] ?? ''}${hint(inner, config.tls !== undefined)}`;
  });
  const detail = reasons.length === 0 ? error.message : reasons.join('; ');
  return new PadlockError('STORE_UNAVAILABLE', `cannot connect to Cassandra: ${detail}`, { cause: error });
}

function hint(error: unknown, tls: boolean): string {
  if (error instanceof cassandra.errors.AuthenticationError) return ' (check store.cassandra.auth)';
  if (!tls && (error as NodeJS.ErrnoException).code === 'ECONNRESET') {
    return ' (a node that requires TLS resets plaintext: is store.cassandra.tls missing?)';
  }
  if (error instanceof Error && /certificate|altnames|SSL|TLS/i.test(error.message)) {
    return " (check store.cassandra.tls against the node's client_encryption_options)";
  }
  return '';
}
