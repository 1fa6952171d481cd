import { categoryFrom, requireRight, userIdFrom, type Route } from '../http/route.js';

export const rotateCategory: Route = {
  method: 'POST',
  path: '/v1/keychains/{userId}/categories/{category}/rotate',
  operationId: 'rotateCategory',
  summary: 'Add a new key version to a category',
  description:
    'New data should use the new version; old versions stay readable until shredded. On a shredded category ' +
    'this is the opt-in after an opt-out. Two concurrent rotations of one category: one wins, the other gets 409.',
  auth: true,
  responses: {
    201: 'The new version number',
    400: 'Bad user id or category',
    401: 'Bad credential',
    403: 'The service may not rotate keychains',
    404: 'No keychain',
    409: 'A concurrent rotation won',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'rotate');
    const userId = userIdFrom(params['userId'], 'userId');
    const category = categoryFrom(params['category'], 'category', app.keys.categories);
    const { version } = await app.keys.rotate(userId, category, service!.serviceId);
    return { status: 201, body: { userId, category, version } };
  },
};
