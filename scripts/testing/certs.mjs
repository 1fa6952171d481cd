import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/*
 * Test certificates, made at test time with the openssl CLI: never committed keys. One helper
 * for every test and the benchmark: a CA, certificates it issues (a server's with SANs such as
 * IP:127.0.0.1 and DNS:localhost, clients' with URI SANs or only a subject), each key EC P-256
 * in a file of mode 0600. Runs openssl with execFileSync (no shell), about 10 ms a certificate.
 *
 *   const ca = makeCa(dir, 'ca');
 *   const server = issue(dir, ca, 'server', { sans: ['IP:127.0.0.1', 'DNS:localhost'] });
 *   const billing = issue(dir, ca, 'billing', { sans: ['URI:spiffe://test/billing'], client: true });
 */

function openssl(args, dir) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

function newKey(dir, name) {
  const key = join(dir, `${name}.key`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], dir);
  chmodSync(key, 0o600);
  return key;
}

/** A self-signed CA: { cert, key } (file paths). */
export function makeCa(dir, name, { subject = `/CN=Padlock test CA ${name}` } = {}) {
  mkdirSync(dir, { recursive: true });
  const key = newKey(dir, name);
  const cert = join(dir, `${name}.crt`);
  const config = join(dir, `${name}.cnf`);
  writeFileSync(
    config,
    '[req]\ndistinguished_name=dn\n[dn]\n[ext]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
  );
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      subject,
      '-config',
      config,
      '-extensions',
      'ext',
    ],
    dir,
  );
  return { cert, key };
}

/**
 * A certificate issued by `ca`: { cert, key }. `sans` are openssl's subjectAltName entries
 * ("IP:127.0.0.1", "DNS:localhost", "URI:spiffe://test/billing"), written to a config file one per
 * line, so a value may hold commas; `subject` is openssl's -subj form. `client` makes a client
 * certificate (extendedKeyUsage clientAuth), otherwise a server one.
 */
export function issue(dir, ca, name, { sans = [], subject = `/CN=${name}`, client = false, days = 2 } = {}) {
  mkdirSync(dir, { recursive: true });
  const key = newKey(dir, name);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const config = join(dir, `${name}.cnf`);
  const alt = sans.map((san, i) => {
    const colon = san.indexOf(':');
    return `${san.slice(0, colon)}.${i + 1} = ${san.slice(colon + 1)}`;
  });
  writeFileSync(
    config,
    [
      '[req]',
      'distinguished_name=dn',
      '[dn]',
      '[ext]',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`,
      ...(sans.length > 0 ? ['subjectAltName=@alt', '[alt]', ...alt] : []),
      '',
    ].join('\n'),
  );
  openssl(['req', '-new', '-key', key, '-out', csr, '-subj', subject, '-config', config], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-out',
      cert,
      '-days',
      String(days),
      '-extfile',
      config,
      '-extensions',
      'ext',
    ],
    dir,
  );
  return { cert, key };
}

/** The usual set: a CA, a server certificate for 127.0.0.1 and localhost, and a second, unrelated CA. */
export function makeTestPki(dir) {
  const ca = makeCa(dir, 'ca');
  const server = issue(dir, ca, 'server', { sans: ['IP:127.0.0.1', 'DNS:localhost'] });
  const otherCa = makeCa(dir, 'other-ca');
  return { dir, ca, server, otherCa };
}
