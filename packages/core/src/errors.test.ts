import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { describe, it } from 'node:test';
import { ERRORS, PadlockError, UnwrapError, type ErrorCode } from './errors.js';

const codes = Object.keys(ERRORS) as ErrorCode[];

void describe('error registry', () => {
  void it('is not empty', () => assert.ok(codes.length > 0));

  for (const code of codes) {
    const { status, message } = ERRORS[code];
    void it(`${code}: ${status} is an HTTP error status with a message`, () => {
      assert.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${status}`);
      assert.notEqual(STATUS_CODES[status], undefined, `${status} is not a standard HTTP status`);
      assert.ok(message.length > 0);
    });
  }

  void it('maps each status DESIGN.md section 4 names to at least one code', () => {
    const statuses = new Set<number>(codes.map((code) => ERRORS[code].status));
    for (const status of [400, 401, 403, 404, 410, 503]) assert.ok(statuses.has(status), `${status}`);
  });

  void it('has exactly one code for a bad credential (401)', () => {
    assert.deepEqual(
      codes.filter((code) => ERRORS[code].status === 401),
      ['UNAUTHENTICATED'],
    );
  });
});

void describe('PadlockError', () => {
  void it('takes its status and default message from the registry', () => {
    for (const code of codes) {
      const error = new PadlockError(code);
      assert.equal(error.code, code);
      assert.equal(error.status, ERRORS[code].status);
      assert.equal(error.message, ERRORS[code].message);
      assert.equal(error.name, 'PadlockError');
      assert.ok(error instanceof Error);
    }
  });

  void it('keeps a custom message and a cause', () => {
    const cause = new Error('backend down');
    const error = new PadlockError('STORE_UNAVAILABLE', 'Cassandra did not answer in time', { cause });
    assert.equal(error.message, 'Cassandra did not answer in time');
    assert.equal(error.status, 503);
    assert.equal(error.cause, cause);
  });

  void it('serializes to exactly {"error":{"code","message"}}', () => {
    const error = new PadlockError('INVALID_USER_ID', 'userId must be 1-128 characters', { cause: new Error('x') });
    assert.deepEqual(error.toJSON(), {
      error: { code: 'INVALID_USER_ID', message: 'userId must be 1-128 characters' },
    });
    assert.equal(
      JSON.stringify(error),
      '{"error":{"code":"INVALID_USER_ID","message":"userId must be 1-128 characters"}}',
    );
    assert.deepEqual(Object.keys(error.toJSON()), ['error']);
    assert.deepEqual(Object.keys(error.toJSON().error), ['code', 'message']);
  });
});

void describe('UnwrapError', () => {
  void it('has one fixed message that names no cause', () => {
    const error = new UnwrapError();
    assert.equal(error.message, 'wrapped key failed to authenticate');
    assert.equal(error.name, 'UnwrapError');
    assert.ok(error instanceof Error);
    assert.ok(!(error instanceof PadlockError));
    assert.equal(error.cause, undefined);
  });
});
