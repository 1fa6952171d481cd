import { requireRight, userIdFrom, type Route } from '../http/route.js';

export const shredKeychain: Route = {
  method: 'DELETE',
  path: '/v1/keychains/{userId}',
  operationId: 'shredKeychain',
  summary: "Shred every category of a user's keychain (account deletion)",
  description:
    'Destroys every root key of the user; every derived key stops being served within maxStalenessSeconds. ' +
    'Idempotent: shredding again answers 200 with shredded = 0 and a new receipt over the same versions. ' +
    'The answer holds a signed receipt (docs/spec.md, "Deletion receipt").',
  auth: true,
  operator: true,
  responses: {
    200: 'Shredded: how many key versions this call destroyed, and the signed receipt (receipt.id, receipt.jws)',
    400: 'Bad user id',
    401: 'Bad credential',
    403: 'The service may not shred keychains',
    404: 'No keychain',
    503: 'The store or the audit log did not take the change: repeat the request (AUDIT_UNAVAILABLE)',
    409: 'A legal hold forbids it (LEGAL_HOLD)',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'shred');
    const userId = userIdFrom(params['userId'], 'userId');
    const { shredded, receipt } = await app.keys.shred(userId, undefined, { requestedBy: service!.serviceId });
    return { status: 200, body: { userId, shredded, receipt: { id: receipt.receiptId, jws: receipt.jws } } };
  },
};
