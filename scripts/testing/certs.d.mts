/** File paths of a certificate and its private key (PEM; the key file has mode 0600). */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export interface IssueOptions {
  /** openssl subjectAltName entries: "IP:127.0.0.1", "DNS:localhost", "URI:spiffe://test/billing". */
  readonly sans?: readonly string[];
  /** openssl -subj form, e.g. "/O=Example/CN=billing"; default "/CN=<name>". */
  readonly subject?: string;
  /** A client certificate (extendedKeyUsage clientAuth); default a server one. */
  readonly client?: boolean;
  readonly days?: number;
}

export function makeCa(dir: string, name: string, options?: { readonly subject?: string }): CertificateFiles;
export function issue(dir: string, ca: CertificateFiles, name: string, options?: IssueOptions): CertificateFiles;

export interface TestPki {
  readonly dir: string;
  readonly ca: CertificateFiles;
  /** Issued by ca for IP:127.0.0.1 and DNS:localhost. */
  readonly server: CertificateFiles;
  /** A CA that issued nothing the server trusts. */
  readonly otherCa: CertificateFiles;
}

export function makeTestPki(dir: string): TestPki;
