import { kekRing, SecretBytes } from '@padlock/core';
import { ReceiptSigner, SqliteKeyStore, verifyReceipt } from '@padlock/server';
import { randomBytes } from 'node:crypto';

/*
 * Receipt signing on one core, with nothing else in this process: receipts per
 * second from ReceiptSigner.sign (jose's CompactSign, Ed25519, canonical JSON
 * of a keychain shred's claims: 3 categories, one version each), signed one
 * after another and 64 at a time (as concurrent shreds would), and verifyReceipt
 * for comparison. The store is not involved (a shred's store writes are timed
 * in the shred path). Prints one JSON object.
 * Usage: npm run build && node bench/receipt-bench.mjs [secondsPerCase]
 */

const seconds = Number(process.argv[2] ?? 2);
const keks = kekRing([{ kid: 'bench', key: SecretBytes.random(32) }], 'bench');
const store = new SqliteKeyStore({ path: ':memory:', busyTimeoutMs: 1000 });
const signer = await ReceiptSigner.open(store, keks);
const now = Date.now();
const claims = () => ({
  iss: 'padlock',
  jti: randomBytes(16).toString('hex'),
  sub: `user-${Math.floor(Math.random() * 1e9)}`,
  iat: Math.floor(now / 1000),
  shreddedAt: now,
  scope: 'keychain',
  categories: ['advertising', 'payments', 'profile'].map((category) => ({
    category,
    versions: [{ version: 1, shreddedAt: now }],
  })),
  requestedBy: 'accounts',
  scheduleId: null,
});
const sample = await signer.sign(claims());

async function measure(batch, fn) {
  for (let i = 0; i < 500; i++) await fn();
  let n = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    if (batch === 1) await fn();
    else await Promise.all(Array.from({ length: batch }, fn));
    n += batch;
  }
  return Math.round(n / ((performance.now() - started) / 1000));
}

const result = {
  node: process.version,
  secondsPerCase: seconds,
  receiptBytes: sample.length,
  'sign, one at a time (receipts/s)': await measure(1, () => signer.sign(claims())),
  'sign, 64 concurrent (receipts/s)': await measure(64, () => signer.sign(claims())),
  'verifyReceipt (receipts/s)': await measure(1, () => verifyReceipt(sample, signer.jwks)),
};
await store.close();
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
