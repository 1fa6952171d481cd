import { categoryFrom, requireRight, userIdFrom, type Route } from '../http/route.js';

export const shredCategory: Route = {
  method: 'DELETE',
  path: '/v1/keychains/{userId}/categories/{category}',
  operationId: 'shredCategory',
  summary: 'Shred one category of a keychain (an opt-out)',
  description:
    'Destroys every version of the category; other categories are untouched. Opting back in later is a ' +
    'rotate, which creates a new version: a shredded version never comes back. The answer holds a signed ' +
    'receipt (docs/spec.md, "Deletion receipt"); a repeated shred destroys nothing more and issues a new one.',
  auth: true,
  operator: true,
  responses: {
    200: 'Shredded: how many key versions this call destroyed, and the signed receipt (receipt.id, receipt.jws)',
    400: 'Bad user id or category',
    401: 'Bad credential',
    403: 'The service may not shred keychains',
    404: 'No keychain',
    503: 'The store or the audit log did not take the change: repeat the request (AUDIT_UNAVAILABLE)',
    409: 'A legal hold forbids it (LEGAL_HOLD)',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'shred');
    const userId = userIdFrom(params['userId'], 'userId');
    const category = categoryFrom(params['category'], 'category', app.keys.categories);
    const { shredded, receipt } = await app.keys.shred(userId, category, { requestedBy: service!.serviceId });
    return { status: 200, body: { userId, category, shredded, receipt: { id: receipt.receiptId, jws: receipt.jws } } };
  },
};
