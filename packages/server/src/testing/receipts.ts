import assert from 'node:assert/strict';

/**
 * A shred answer's body without its receipt, after checking the receipt's
 * shape: a 32-hex id and a three-part compact JWS whose payload names that id.
 * (receipts.test.ts checks signatures; this keeps route tests about routes.)
 */
export function withoutReceipt(body: unknown): Record<string, unknown> {
  const { receipt, ...rest } = body as { receipt?: { id?: unknown; jws?: unknown } };
  assert.ok(receipt !== undefined, 'a shred answer carries a receipt');
  assert.match(String(receipt.id), /^[0-9a-f]{32}$/);
  const parts = String(receipt.jws).split('.');
  assert.equal(parts.length, 3, 'the receipt is a compact JWS');
  const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { jti: string };
  assert.equal(claims.jti, receipt.id, "the receipt's jti is its id");
  return rest;
}
