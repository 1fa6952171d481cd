import { categoryFrom, requireRight, userIdFrom, CATEGORY_SCHEMA, type Route } from '../http/route.js';
import { holdJson } from './lifecycle-json.js';

export const placeHold: Route = {
  method: 'POST',
  path: '/v1/keychains/{userId}/holds',
  operationId: 'placeHold',
  summary: 'Place a legal hold on a keychain or one category',
  description:
    'While the hold is in force, every shred it covers is refused with 409 LEGAL_HOLD, immediate or scheduled ' +
    '(a hold on the keychain covers every category; a hold on a category blocks shredding the keychain too). ' +
    'A schedule that falls due meanwhile waits and runs after the release. Needs the hold right, apart from shred.',
  auth: true,
  operator: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['reason'],
    properties: {
      category: CATEGORY_SCHEMA,
      reason: { type: 'string', minLength: 1, maxLength: 1000 },
    },
  },
  responses: {
    201: 'Placed; the hold',
    400: 'Bad body, user id or category',
    401: 'Bad credential',
    403: 'The service may not place holds',
    404: 'No keychain',
  },
  async handle({ params, body, service, app }) {
    requireRight(service!, 'hold');
    const userId = userIdFrom(params['userId'], 'userId');
    const b = body as { category?: string; reason: string };
    const category = b.category === undefined ? undefined : categoryFrom(b.category, 'category', app.keys.categories);
    const hold = await app.lifecycle.placeHold(userId, category, b.reason, service!.serviceId);
    return { status: 201, body: holdJson(hold, true) };
  },
};
