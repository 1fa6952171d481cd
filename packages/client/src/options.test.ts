import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { issue, makeTestPki } from '../../../scripts/testing/certs.mjs';
import { InvalidInput } from './errors.js';
import { resolveOptions } from './options.js';

/* Options are validated once, with exact messages; one table row per bad option. */

const GOOD = { groups: [{ name: 'padlock', urls: ['http://127.0.0.1:8700'] }], credential: 'svc.abc.def.ghi' };
const with_ = (extra: Record<string, unknown>): Record<string, unknown> => ({ ...GOOD, ...extra });

// Real PEMs, made for this run: a CA, and a client certificate with its key and another's.
const pkiDir = mkdtempSync(join(tmpdir(), 'padlock-client-options-'));
after(() => rmSync(pkiDir, { recursive: true, force: true }));
const pki = makeTestPki(pkiDir);
const client = issue(pkiDir, pki.ca, 'client', { client: true, sans: ['URI:spiffe://test/app'] });
const CA = readFileSync(pki.ca.cert, 'utf8');
const CERT = readFileSync(client.cert);
const KEY = readFileSync(client.key);
const OTHER_KEY = readFileSync(pki.server.key);
const HTTPS = [{ name: 'padlock', urls: ['https://127.0.0.1:8700'] }];
const withTls = (tls: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...GOOD,
  groups: HTTPS,
  tls,
  ...extra,
});
const CA_MESSAGE = 'options.tls.ca must be PEM certificates: a string, a Buffer, or a non-empty array of them';

// One row per case reads as the table it is.
// prettier-ignore
const BAD: readonly [string, unknown, string][] = [
  ['not an object', 'http://x', 'options must be an object'],
  ['null', null, 'options must be an object'],
  ['unknown option', with_({ timeout: 5 }), 'options has an unknown option "timeout"'],
  ['no groups', { credential: 'c' }, 'options.groups must be an array of 1 to 16 endpoint groups'],
  ['empty groups', with_({ groups: [] }), 'options.groups must be an array of 1 to 16 endpoint groups'],
  ['group not an object', with_({ groups: ['http://x'] }), 'options.groups[0] must be an object { name, urls }'],
  ['group unknown key', with_({ groups: [{ name: 'a', urls: ['http://x'], weight: 1 }] }), 'options.groups[0] has an unknown option "weight"'],
  ['group name missing', with_({ groups: [{ urls: ['http://x'] }] }), 'options.groups[0].name must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" and "-"'],
  ['group name with space', with_({ groups: [{ name: 'a b', urls: ['http://x'] }] }), 'options.groups[0].name must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" and "-"'],
  ['duplicate group', with_({ groups: [{ name: 'a', urls: ['http://x'] }, { name: 'a', urls: ['http://y'] }] }), 'options.groups[1].name "a" names another group too'],
  ['no urls', with_({ groups: [{ name: 'a', urls: [] }] }), 'options.groups[0].urls must be an array of 1 to 64 base URLs'],
  ['url not a string', with_({ groups: [{ name: 'a', urls: [8700] }] }), 'options.groups[0].urls[0] must be an http: or https: URL without credentials, query or fragment'],
  ['url not a URL', with_({ groups: [{ name: 'a', urls: ['localhost:8700'] }] }), 'options.groups[0].urls[0] must be an http: or https: URL without credentials, query or fragment'],
  ['ftp url', with_({ groups: [{ name: 'a', urls: ['ftp://x'] }] }), 'options.groups[0].urls[0] must be an http: or https: URL without credentials, query or fragment'],
  ['url with credentials', with_({ groups: [{ name: 'a', urls: ['http://u:p@x'] }] }), 'options.groups[0].urls[0] must be an http: or https: URL without credentials, query or fragment'],
  ['url with query', with_({ groups: [{ name: 'a', urls: ['http://x/?a=1'] }] }), 'options.groups[0].urls[0] must be an http: or https: URL without credentials, query or fragment'],
  ['url with empty fragment', with_({ groups: [{ name: 'a', urls: ['http://x/#'] }] }), 'options.groups[0].urls[0] must be an http: or https: URL without credentials, query or fragment'],
  ['second url bad', with_({ groups: [{ name: 'a', urls: ['http://x', 'nope'] }] }), 'options.groups[0].urls[1] must be an http: or https: URL without credentials, query or fragment'],
  ['no credential', { groups: GOOD.groups }, 'options.credential is required, unless options.tls.cert authenticates the service on its own'],
  ['credential not a string', with_({ credential: 42 }), 'options.credential must be 1-1024 printable ASCII characters without spaces'],
  ['credential with newline', with_({ credential: 'abc\r\nX-Evil: 1' }), 'options.credential must be 1-1024 printable ASCII characters without spaces'],
  ['credential with space', with_({ credential: 'Bearer abc' }), 'options.credential must be 1-1024 printable ASCII characters without spaces'],
  ['categories empty', with_({ categories: [] }), 'options.categories must be a non-empty array of category names'],
  ['category upper case', with_({ categories: ['profile', 'Ads'] }), 'options.categories[1] must be 1-32 characters of lower-case letters, digits, _ and -, starting with a letter'],
  ['category twice', with_({ categories: ['profile', 'profile'] }), 'options.categories names a category twice'],
  ['timeout 0', with_({ timeoutMs: 0 }), 'options.timeoutMs must be an integer from 1 to 60000'],
  ['timeout fraction', with_({ timeoutMs: 1.5 }), 'options.timeoutMs must be an integer from 1 to 60000'],
  ['timeout string', with_({ timeoutMs: '500' }), 'options.timeoutMs must be an integer from 1 to 60000'],
  ['deadline below timeout', with_({ timeoutMs: 1000, deadlineMs: 500 }), 'options.deadlineMs must be at least options.timeoutMs'],
  ['hedge 0', with_({ hedgeAfterMs: 0 }), 'options.hedgeAfterMs must be an integer from 1 to 60000'],
  ['downMs negative', with_({ downMs: -1 }), 'options.downMs must be an integer from 0 to 600000'],
  ['maxSockets 0', with_({ maxSockets: 0 }), 'options.maxSockets must be an integer from 1 to 1024'],
  ['batch not an object', with_({ batch: 500 }), 'options.batch must be an object'],
  ['batch unknown', with_({ batch: { size: 5 } }), 'options.batch has an unknown option "size"'],
  ['batch maxUsers too big', with_({ batch: { maxUsers: 10001 } }), 'options.batch.maxUsers must be an integer from 1 to 10000'],
  ['batch body tiny', with_({ batch: { maxBodyBytes: 100 } }), 'options.batch.maxBodyBytes must be an integer from 1024 to 16777216'],
  ['batch delay too long', with_({ batch: { delayMs: 5000 } }), 'options.batch.delayMs must be an integer from 0 to 1000'],
  ['cache true', with_({ cache: true }), 'options.cache must be an object'],
  ['cache unknown', with_({ cache: { ttlMs: 5 } }), 'options.cache has an unknown option "ttlMs"'],
  ['cache maxEntries 0', with_({ cache: { maxEntries: 0 } }), 'options.cache.maxEntries must be an integer from 1 to 10000000'],
  ['cache maxBytes tiny', with_({ cache: { maxBytes: 10 } }), 'options.cache.maxBytes must be an integer from 1024 to 1099511627776'],
  ['cache maxTtlMs 0', with_({ cache: { maxTtlMs: 0 } }), 'options.cache.maxTtlMs must be an integer from 1 to 86400000'],
  ['retry true', with_({ retry: true }), 'options.retry must be an object'],
  ['retry unknown', with_({ retry: { attempts: 3 } }), 'options.retry has an unknown option "attempts"'],
  ['retry too many', with_({ retry: { maxRetries: 11 } }), 'options.retry.maxRetries must be an integer from 0 to 10'],
  ['retry ratio above 1', with_({ retry: { budgetRatio: 1.5 } }), 'options.retry.budgetRatio must be a number from 0 to 1'],
  ['retry ratio NaN', with_({ retry: { budgetRatio: Number.NaN } }), 'options.retry.budgetRatio must be a number from 0 to 1'],
  ['retry delays inverted', with_({ retry: { baseDelayMs: 100, maxDelayMs: 50 } }), 'options.retry.maxDelayMs must be at least options.retry.baseDelayMs'],
  ['tls not an object', withTls(CA), 'options.tls must be an object'],
  ['tls verification off', withTls({ ca: CA, rejectUnauthorized: false }), 'options.tls has an unknown option "rejectUnauthorized"'],
  ['tls without an https URL', with_({ tls: { ca: CA } }), 'options.tls is set, but no URL in options.groups is https:'],
  ['ca not PEM', withTls({ ca: 'not a certificate' }), CA_MESSAGE],
  ['ca a number', withTls({ ca: 5 }), CA_MESSAGE],
  ['ca an empty array', withTls({ ca: [] }), CA_MESSAGE],
  ['ca second entry bad', withTls({ ca: [CA, KEY] }), CA_MESSAGE],
  ['cert without key', withTls({ cert: CERT }), 'options.tls.cert and options.tls.key go together: set both or neither'],
  ['key without cert', withTls({ key: KEY }), 'options.tls.cert and options.tls.key go together: set both or neither'],
  ['cert not PEM', withTls({ cert: KEY, key: KEY }), 'options.tls.cert must be a PEM certificate (a string or a Buffer)'],
  ['key not PEM', withTls({ cert: CERT, key: CERT }), 'options.tls.key must be an unencrypted PEM private key (a string or a Buffer)'],
  ['key another certificate\'s', withTls({ cert: CERT, key: OTHER_KEY }), 'options.tls.key is not the private key of options.tls.cert'],
  ['no credential, CA only', withTls({ ca: CA }, { credential: undefined }), 'options.credential is required, unless options.tls.cert authenticates the service on its own'],
];

void describe('client options', () => {
  for (const [name, options, message] of BAD) {
    void it(`refuses ${name}`, () => {
      assert.throws(
        () => resolveOptions(options),
        (error: unknown) =>
          error instanceof InvalidInput && error.code === 'INVALID_INPUT' && error.message === message,
      );
    });
  }

  void it('fills in defaults and freezes the result', () => {
    const resolved = resolveOptions(GOOD);
    assert.equal(resolved.timeoutMs, 500);
    assert.equal(resolved.deadlineMs, 2000);
    assert.equal(resolved.hedgeAfterMs, undefined);
    assert.equal(resolved.downMs, 1000);
    assert.deepEqual(resolved.batch, { maxUsers: 500, maxBodyBytes: 65536, delayMs: 0 });
    assert.deepEqual(resolved.cache, { maxEntries: 10000, maxBytes: 16 * 1024 * 1024, maxTtlMs: 60000 });
    assert.equal(resolved.retry, false);
    assert.equal(resolved.categories, undefined);
    assert.ok(Object.isFrozen(resolved) && Object.isFrozen(resolved.batch) && Object.isFrozen(resolved.groups));
  });

  void it('keeps a path prefix without its trailing slash, and accepts https', () => {
    const resolved = resolveOptions(
      with_({ groups: [{ name: 'p', urls: ['https://proxy.example/padlock/', 'http://[::1]:8700'] }] }),
    );
    assert.equal(resolved.groups[0]?.urls[0]?.pathname, '/padlock/');
    assert.equal(resolved.groups[0]?.urls[1]?.hostname, '[::1]');
  });

  void it('fills retry defaults when retries are enabled', () => {
    assert.deepEqual(resolveOptions(with_({ retry: {} })).retry, {
      maxRetries: 2,
      budgetRatio: 0.1,
      budgetMax: 10,
      baseDelayMs: 20,
      maxDelayMs: 200,
    });
    assert.equal(resolveOptions(with_({ cache: false })).cache, false);
  });

  void it('takes a CA, a client certificate and its key; the certificate may stand in for the credential', () => {
    const resolved = resolveOptions({ groups: HTTPS, tls: { ca: [CA], cert: CERT, key: KEY.toString('utf8') } });
    assert.equal(resolved.credential, undefined);
    assert.deepEqual(resolved.tls?.ca, [Buffer.from(CA)]);
    assert.deepEqual(resolved.tls?.key, KEY, 'a copy of the key');
    assert.ok(Object.isFrozen(resolved.tls));
    assert.equal(resolveOptions(withTls({ ca: CA })).tls?.cert, undefined);
  });

  void it('never shows the credential in its errors', () => {
    try {
      resolveOptions(with_({ credential: 'top secret' }));
      assert.fail('accepted');
    } catch (error) {
      assert.ok(!(error as Error).message.includes('secret'));
    }
  });
});
