import { requireRight, userIdFrom, type Route } from '../http/route.js';

export const shredKeychain: Route = {
  method: 'DELETE',
  path: '/v1/keychains/{userId}',
  operationId: 'shredKeychain',
  summary: "Shred every category of a user's keychain (account deletion)",
  description:
    'Destroys every root key of the user; every derived key stops being served within maxStalenessSeconds. ' +
    'Idempotent: shredding again answers 200 with shredded = 0.',
  auth: true,
  responses: {
    200: 'Shredded; how many key versions this call destroyed',
    400: 'Bad user id',
    401: 'Bad credential',
    403: 'The service may not shred keychains',
    404: 'No keychain',
    409: 'A legal hold forbids it (LEGAL_HOLD)',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'shred');
    const userId = userIdFrom(params['userId'], 'userId');
    const { shredded } = await app.keys.shred(userId, undefined, { requestedBy: service!.serviceId });
    return { status: 200, body: { userId, shredded } };
  },
};
