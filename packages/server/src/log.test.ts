import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, isSecretField } from './log.js';

/*
 * Log redaction by field name: every name that may hold key material or a credential is
 * redacted, and a Cassandra keyspace, which holds neither, is printed.
 */

const VALUE = 'c2VjcmV0LWJ5dGVzLXRoYXQtbXVzdC1uZXZlci1wcmludA';

function logged(fields: Record<string, string>): Record<string, unknown> {
  const lines: string[] = [];
  createLogger('debug', (line) => lines.push(line)).info('m', fields);
  assert.equal(lines.length, 1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

// One row per case, unformatted, so it reads as the table it is.
// prettier-ignore
const REDACTED = [
  'key', 'keys', 'Key', 'KEY', 'rootKey', 'root_key', 'root-key', 'keyBytes', 'keyMaterial', 'KEY_MATERIAL',
  'apikey', 'APIKey', 'apiKey', 'privateKey', 'kek', 'KEK', 'kekBytes', 'derivedKeys', 'signing.key',
  'secret', 'clientSecret', 'credential', 'credentials', 'Authorization', 'authorizationHeader', 'token',
  'bearerToken', 'password', 'passwordFile', 'passwd', 'passphrase', 'cookie', 'Set-Cookie',
  'keyspacePassword', 'keyspace_key', 'keyspaceKey', 'monkey', 'keyspacekey', 'keySpace',
];
// prettier-ignore
const PRINTED = ['keyspace', 'Keyspace', 'KEYSPACE', 'keyspaces', 'journalKeyspace', 'journal_keyspace', 'keyspace.name',
  'kid', 'userId', 'serviceId', 'category', 'route', 'status', 'ms', 'generation', 'code'];

describe('log redaction', () => {
  for (const name of REDACTED) {
    it(`redacts ${name}`, () => {
      assert.ok(isSecretField(name));
      const entry = logged({ [name]: VALUE });
      assert.equal(entry[name], '[redacted]');
      assert.ok(!JSON.stringify(entry).includes(VALUE));
    });
  }

  for (const name of PRINTED) {
    it(`prints ${name}`, () => {
      assert.ok(!isSecretField(name));
      assert.equal(logged({ [name]: 'padlock_journal' })[name], 'padlock_journal');
    });
  }

  it('redacts every name that still holds a secret stem once the word "keyspace" is taken out', () => {
    const stems = ['key', 'kek', 'secret', 'credential', 'authorization', 'token', 'password', 'bearer'];
    const part = fc.stringMatching(/^[A-Za-z0-9_.-]{0,12}$/);
    fc.assert(
      fc.property(
        part,
        fc.constantFrom(...stems),
        fc.constantFrom('lower', 'upper', 'title'),
        part,
        (a, stem, c, b) => {
          const word =
            c === 'lower' ? stem : c === 'upper' ? stem.toUpperCase() : stem[0]!.toUpperCase() + stem.slice(1);
          const name = `${a}${word}${b}`;
          const rest = name.toLowerCase().replaceAll('keyspace', ' ');
          if (stems.some((s) => rest.includes(s))) assert.ok(isSecretField(name), name);
        },
      ),
    );
  });

  it('prints every name with no secret stem in it', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_.-]{1,24}$/), (name) => {
        const lower = name.toLowerCase();
        fc.pre(!/key|kek|secret|credential|authorization|token|password|passwd|passphrase|bearer|cookie/.test(lower));
        assert.ok(!isSecretField(name), name);
      }),
    );
  });
});
