import { categoryFrom, requireRight, userIdFrom, type Route } from '../http/route.js';

export const shredCategory: Route = {
  method: 'DELETE',
  path: '/v1/keychains/{userId}/categories/{category}',
  operationId: 'shredCategory',
  summary: 'Shred one category of a keychain (an opt-out)',
  description:
    'Destroys every version of the category; other categories are untouched. Opting back in later is a ' +
    'rotate, which creates a new version: a shredded version never comes back.',
  auth: true,
  responses: {
    200: 'Shredded; how many key versions this call destroyed',
    400: 'Bad user id or category',
    401: 'Bad credential',
    403: 'The service may not shred keychains',
    404: 'No keychain',
    409: 'A legal hold forbids it (LEGAL_HOLD)',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'shred');
    const userId = userIdFrom(params['userId'], 'userId');
    const category = categoryFrom(params['category'], 'category', app.keys.categories);
    const { shredded } = await app.keys.shred(userId, category, { requestedBy: service!.serviceId });
    return { status: 200, body: { userId, category, shredded } };
  },
};
