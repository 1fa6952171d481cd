import type { Route } from '../http/route.js';

export const receiptKeys: Route = {
  method: 'GET',
  path: '/v1/receipts/keys',
  operationId: 'getReceiptKeys',
  summary: 'The public keys that verify deletion receipts (JWKS, RFC 7517)',
  description:
    'Every Ed25519 key that ever signed a receipt or an audit checkpoint, retired ones included, so a receipt ' +
    'verifies for as long as it is kept. No credential needed: these are public keys, and a verifier may be a ' +
    'third party. Save the answer to verify receipts offline (`padlock receipt verify FILE --jwks FILE`).',
  auth: false,
  responses: { 200: 'The JWKS: {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}]}' },
  handle({ app }) {
    return { status: 200, body: app.keys.receiptKeys };
  },
};
