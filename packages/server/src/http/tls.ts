import { randomBytes, X509Certificate } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { BlockList, isIP, type Socket } from 'node:net';
import { createSecureContext, createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import { ConfigError, type ListenConfig, type TlsConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

/*
 * HTTPS for Padlock's listener: a node:tls server whose secure sockets are served by the
 * HTTP/1.1 layer (WireServer.accept). The certificate, key and client CA are files, read at
 * start and again by reload() (SIGHUP in `padlock serve`): new handshakes get the new context,
 * open connections keep the one they were made with, and a reload that fails keeps the old one.
 *
 * Mutual TLS binds a connection to a client certificate's identity, decided once per connection
 * at its handshake (renegotiation is refused, so it cannot change): the certificate's one URI SAN
 * (a SPIFFE ID), or, when it has none, its subject. Which service that identity belongs to is the
 * service registry's business (server.ts).
 */

/** How long a client has to finish its handshake: the HTTP layer's head timeout. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** What a connection's verified client certificate says; absent when it presented none. */
export interface ClientCertificate {
  /** The identity to map to a service; undefined when the certificate names none unambiguously. */
  readonly identity: string | undefined;
}

const clientCertificates = new WeakMap<Socket, ClientCertificate>();

/** The verified client certificate of a connection's socket, or undefined when it presented none (or is not TLS). */
export function clientCertificateOf(socket: Socket): ClientCertificate | undefined {
  return clientCertificates.get(socket);
}

const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * The URI SANs in Node's rendering of a subjectAltName extension ("DNS:a, URI:b"), where a value
 * that could be mistaken for a separator is a JSON string literal (CVE-2021-44532; Node's
 * documentation of x509.subjectAltName). Undefined when the text does not parse: fail closed.
 */
export function uriSubjectAltNames(text: string): string[] | undefined {
  const uris: string[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon === -1) return undefined;
    const kind = text.slice(at, colon);
    let value: string;
    let end: number;
    if (text.charCodeAt(colon + 1) === 34 /* " */) {
      end = colon + 2;
      while (end < text.length && text.charCodeAt(end) !== 34) end += text.charCodeAt(end) === 92 /* \ */ ? 2 : 1;
      if (end >= text.length) return undefined;
      end += 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        return undefined;
      }
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end === -1) end = text.length;
      value = text.slice(colon + 1, end);
    }
    if (kind === 'URI') uris.push(value);
    if (end === text.length) break;
    if (!text.startsWith(', ', end) || end + 2 >= text.length) return undefined;
    at = end + 2;
  }
  return uris;
}

/**
 * A certificate's identity: its URI SAN when it has exactly one (a URI with a scheme); when it has
 * none, its subject in RFC 4514 order and escaping, as `openssl x509 -noout -subject -nameopt
 * RFC2253` prints it (e.g. "CN=billing,O=Example"). Undefined (maps to no service) when it has
 * several URI SANs, a URI SAN without a scheme, a multi-valued RDN, or an empty subject.
 */
export function certificateIdentity(certificate: X509Certificate): string | undefined {
  const alt = certificate.subjectAltName;
  const uris = alt === undefined ? [] : uriSubjectAltNames(alt);
  if (uris === undefined || uris.length > 1) return undefined;
  if (uris.length === 1) return URI_SCHEME.test(uris[0]!) ? uris[0] : undefined;
  // Node prints the subject one RDN per line, in certificate order, values escaped as RFC 2253
  // says (so an unescaped "+" separates the values of a multi-valued RDN, which is refused).
  const rdns = certificate.subject.split('\n');
  if (rdns.some((rdn) => rdn === '' || / \+ /.test(rdn))) return undefined;
  return rdns.reverse().join(',');
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for an address in 127.0.0.0/8 or ::1 (also IPv4-mapped), or the name "localhost". */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(bare);
  if (family === 0) return false;
  return LOOPBACK.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Refuses a plaintext listener off loopback unless the config says, by its loudly named switch,
 * that this is meant; returns the warning to log when it is.
 */
export function checkPlaintextListener(listen: ListenConfig): string | undefined {
  if (listen.tls !== undefined || isLoopback(listen.host)) return undefined;
  if (!listen.insecurePlaintextOffLoopback) {
    throw new ConfigError(
      `config.listen.host "${listen.host}" is not a loopback address and config.listen.tls is not set: ` +
        'configure TLS, or set config.listen.insecurePlaintextOffLoopback to true to serve plaintext HTTP ' +
        'to the network anyway',
    );
  }
  return 'INSECURE: plaintext HTTP on a non-loopback address (config.listen.insecurePlaintextOffLoopback): credentials and derived keys cross the network unencrypted';
}

/** Reads a file through the descriptor it opened (no race between the check and the read). */
function readPem(path: string, what: string, ownerOnly: boolean): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new ConfigError(`cannot open the TLS ${what} file ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  try {
    const mode = fstatSync(fd).mode;
    if (ownerOnly && (mode & 0o077) !== 0) {
      throw new ConfigError(
        `the TLS ${what} file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The secure-context options of a TLS config, read from its files and checked; the certificate's end of validity. */
export function loadTlsMaterial(tls: TlsConfig): { options: SecureContextOptions; notAfter: Date } {
  const cert = readPem(tls.certFile, 'certificate', false);
  const key = readPem(tls.keyFile, 'private key', true);
  try {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(cert);
    } catch {
      throw new ConfigError(`the TLS certificate file ${tls.certFile} does not hold a PEM certificate`);
    }
    const notAfter = new Date(leaf.validTo);
    if (!(notAfter.getTime() > Date.now())) {
      throw new ConfigError(`the TLS certificate in ${tls.certFile} expired at ${notAfter.toISOString()}`);
    }
    const ca = tls.clientCertificates === undefined ? undefined : readPem(tls.clientCertificates.caFile, 'CA', false);
    if (ca !== undefined) {
      try {
        new X509Certificate(ca);
      } catch {
        throw new ConfigError(`the TLS CA file ${tls.clientCertificates!.caFile} does not hold a PEM certificate`);
      }
    }
    const options: SecureContextOptions = {
      cert,
      key,
      minVersion: tls.minVersion,
      maxVersion: 'TLSv1.3',
      ...(ca === undefined ? {} : { ca }),
    };
    try {
      // Made once here to check it (a key that is not the certificate's, a PEM that does not
      // parse): OpenSSL's messages name the problem and carry no key bytes.
      createSecureContext(options);
    } catch (error) {
      throw new ConfigError(
        `the TLS certificate ${tls.certFile} and key ${tls.keyFile} cannot be used: ${(error as Error).message}`,
      );
    }
    return { options, notAfter };
  } catch (error) {
    key.fill(0);
    throw error;
  }
}

/** Handshake failures by reason; OpenSSL's codes mapped to a few labels so the metric's cardinality stays bounded. */
function failureReason(code: string | undefined): string {
  switch (code) {
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_HTTP_REQUEST':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return 'not_tls';
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_NO_PROTOCOLS_AVAILABLE':
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
    case 'ERR_SSL_NO_SHARED_CIPHER':
      return 'protocol';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return 'no_client_certificate';
    case 'ERR_SSL_CERTIFICATE_VERIFY_FAILED':
      return 'client_certificate_rejected';
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN':
    case 'ERR_SSL_TLSV1_ALERT_BAD_CERTIFICATE':
      return 'server_certificate_rejected';
    default:
      return 'other';
  }
}

export class TlsListener {
  readonly server: Server;
  readonly #config: TlsConfig;
  #notAfter: Date;
  /** Every accepted TCP socket until it closes, its handshake done or not. */
  readonly #raw = new Set<Socket>();

  constructor(
    config: TlsConfig,
    onSecureSocket: (socket: TLSSocket) => void,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.#config = config;
    const { options, notAfter } = loadTlsMaterial(config);
    this.#notAfter = notAfter;
    const clientAuth = config.clientCertificates;
    this.server = createServer({
      ...options,
      // optional: verify a certificate when one is sent (checked below), accept a client without one.
      requestCert: clientAuth !== undefined,
      rejectUnauthorized: clientAuth !== undefined && clientAuth.mode !== 'optional',
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      allowHalfOpen: true,
      noDelay: true,
    });
    (options.key as Buffer).fill(0);
    this.server.on('secureConnection', (socket: TLSSocket) => {
      // A renegotiation could present another certificate than the one this connection is bound to.
      socket.disableRenegotiation();
      this.metrics.tlsHandshakes.inc({ session: socket.isSessionReused() ? 'resumed' : 'new' });
      if (clientAuth !== undefined) {
        const peer = socket.getPeerX509Certificate();
        if (peer !== undefined) {
          if (!socket.authorized) {
            // Only reachable in optional mode: a certificate was sent and does not verify.
            this.metrics.tlsHandshakeFailures.inc({ reason: 'client_certificate_rejected' });
            socket.destroy();
            return;
          }
          clientCertificates.set(socket, { identity: certificateIdentity(peer) });
        }
      }
      onSecureSocket(socket);
    });
    this.server.on('connection', (socket: Socket) => {
      this.#raw.add(socket);
      socket.once('close', () => this.#raw.delete(socket));
    });
    this.server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      // A client certificate that does not verify is not an OpenSSL error here: node:tls completes
      // the handshake, sets authorizationError and destroys the socket (so the error is a reset).
      const rejected = clientAuth !== undefined && Boolean(socket.authorizationError);
      const reason = rejected ? 'client_certificate_rejected' : failureReason(error.code);
      this.metrics.tlsHandshakeFailures.inc({ reason });
      this.log.debug('TLS handshake failed', { reason, code: error.code ?? 'unknown' });
      socket.destroy();
    });
    metrics.tlsCertificateNotAfter.track(() => Math.floor(this.#notAfter.getTime() / 1000));
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /**
   * Reads the files again; new handshakes use them, open connections are untouched. A failure is
   * logged and keeps the current context. Session tickets of the old context stop resuming: a
   * client whose certificate the new CA no longer trusts must not ride an old session back in.
   */
  reload(): boolean {
    let loaded: { options: SecureContextOptions; notAfter: Date };
    try {
      loaded = loadTlsMaterial(this.#config);
    } catch (error) {
      this.metrics.tlsReloads.inc({ result: 'failed' });
      this.log.error('TLS reload failed; keeping the current certificate', {
        error: error instanceof Error ? error.message : 'unknown',
      });
      return false;
    }
    this.server.setSecureContext(loaded.options);
    this.server.setTicketKeys(randomBytes(48));
    (loaded.options.key as Buffer).fill(0);
    this.#notAfter = loaded.notAfter;
    this.metrics.tlsReloads.inc({ result: 'ok' });
    this.log.info('TLS certificate reloaded', { notAfter: loaded.notAfter.toISOString() });
    return true;
  }

  /** Stops accepting; connections already handed to the HTTP layer are its to close. */
  stopAccepting(): void {
    this.server.close();
  }

  /** Cuts connections still in their handshake (after a drain: the others have closed by then). */
  destroyHandshaking(): void {
    for (const socket of this.#raw) socket.destroy();
  }
}
