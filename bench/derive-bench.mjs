import { deriveKey, derivationInfo, SecretBytes, unwrapRootKey, wrapRootKey } from '@padlock/core';
import { createHash, createHmac, hash, hkdfSync, randomBytes } from 'node:crypto';

/*
 * The derivation on one core, with nothing else in this process: derived keys
 * per second from @padlock/core's deriveKey, beside the floors it is built
 * from (Node's one-shot SHA-256 and crypto.hkdfSync with the same sizes), and
 * the unwrap that every L1 miss pays per category. Prints one JSON object.
 * Usage: node bench/derive-bench.mjs [secondsPerCase]
 */

const seconds = Number(process.argv[2] ?? 1);
const rootKey = SecretBytes.random(32);
const serviceKey = SecretBytes.random(32);
const context = { serviceId: 'playlist', userId: 'u123456', category: 'profile', version: 1 };
const ikm = randomBytes(32);
const salt = randomBytes(32);
const info = derivationInfo(context);
const block = randomBytes(64);
const ONE = Buffer.from([1]);
const kek = { kid: 'bench-kek-1', key: SecretBytes.random(32) };
const ring = { active: kek, find: (kid) => (kid === kek.kid ? kek : undefined) };
const ref = { userId: 'u123456', category: 'profile', version: 1 };
const wrapped = wrapRootKey(kek, ref, rootKey);

const cases = {
  'crypto.hash sha256 (64 B, one-shot)': () => hash('sha256', block, 'buffer'),
  'createHash sha256 (64 B)': () => createHash('sha256').update(block).digest(),
  'createHmac sha256 x2 (HKDF by hand, one block)': () =>
    createHmac('sha256', createHmac('sha256', salt).update(ikm).digest()).update(info).update(ONE).digest(),
  'crypto.hkdfSync sha256 (L=32)': () => hkdfSync('sha256', ikm, salt, info, 32),
  'deriveKey (@padlock/core)': () => deriveKey(rootKey, serviceKey, context).wipe(),
  'unwrapRootKey (per category on an L1 miss)': () => unwrapRootKey(ring, ref, wrapped).wipe(),
};

function measure(fn) {
  for (let i = 0; i < 2000; i++) fn();
  let n = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  let now = started;
  while (now < end) {
    for (let i = 0; i < 200; i++) fn();
    n += 200;
    now = performance.now();
  }
  const perSecond = n / ((now - started) / 1000);
  return { perSecond: Math.round(perSecond), usPerOp: Math.round((1e6 / perSecond) * 1000) / 1000 };
}

const results = {};
for (const [name, fn] of Object.entries(cases)) results[name] = measure(fn);
process.stdout.write(`${JSON.stringify(results)}\n`);
