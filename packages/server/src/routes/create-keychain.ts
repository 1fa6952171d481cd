import { requireRight, userIdFrom, USER_ID_SCHEMA, type Route } from '../http/route.js';
import { keychainJson } from '../http/serialize.js';

export const createKeychain: Route = {
  method: 'POST',
  path: '/v1/keychains',
  operationId: 'createKeychain',
  summary: "Create a user's keychain at signup",
  description:
    'Idempotent and race-free: concurrent creates of one user end with exactly one root key per category. ' +
    "Answers 201 when this call created it, 200 when it existed, with the caller's derived keys for every " +
    'category it may read. A shredded category is not revived: rotate it to opt back in.',
  auth: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['userId'],
    properties: { userId: USER_ID_SCHEMA },
  },
  responses: {
    200: 'The keychain existed; derived keys',
    201: 'Created; derived keys',
    400: 'Bad body or user id',
    401: 'Bad credential',
    403: 'The service may not create keychains',
  },
  async handle({ body, service, app }) {
    requireRight(service!, 'create');
    const userId = userIdFrom((body as { userId: unknown }).userId, 'userId');
    const { created, keychain } = await app.keys.create(userId, service!.serviceId);
    const readable = app.keys.categories.filter((c) => service!.readable.has(c));
    const derived = app.keys.derive(service!, userId, keychain, readable);
    const text = JSON.stringify({ created, ...keychainJson(derived) });
    return { status: created ? 201 : 200, body: text, contentType: 'application/json' };
  },
};
