import { PadlockError } from '@padlock/core';
import {
  categoriesQuery,
  readableCategories,
  userIdFrom,
  type AppContext,
  type CategoryChoice,
  type Reply,
  type Route,
} from '../http/route.js';
import type { Service } from '../services.js';
import type { Keychain } from '../keychain.js';
import { RenderedBody, renderedKeys } from '../http/serialize.js';

export const getKeys: Route = {
  method: 'GET',
  path: '/v1/keys/{userId}',
  operationId: 'getKeys',
  summary: "A user's derived keys for the caller",
  description:
    'Every live version of each requested category (all categories the service may read when none are named), ' +
    'oldest first, the newest marked current so old ciphertexts still decrypt. 404 when the user has no keychain, ' +
    '410 when every requested category is shredded. Asking for a category the service may not read is 403 ' +
    'and returns no key of any category.',
  auth: true,
  query: [
    {
      name: 'categories',
      description: 'Comma-separated category names; omit for every category the service may read',
      schema: { type: 'string' },
    },
  ],
  responses: {
    200: 'Derived keys, with a per-category status (ok, shredded, not_found)',
    400: 'Bad user id or category',
    401: 'Bad credential',
    403: 'A category the service may not read',
    404: 'No keychain',
    410: 'Every requested category is shredded (KEYCHAIN_SHREDDED), or one is scheduled for shredding and withheld during its grace period (KEYCHAIN_PENDING_DELETION)',
  },
  handle({ params, query, service, app }) {
    const userId = userIdFrom(params['userId'], 'userId');
    let named: string[] | undefined;
    if (query.size > 0) {
      for (const name of query.keys()) {
        if (name !== 'categories') throw new PadlockError('INVALID_QUERY', `unknown query parameter "${name}"`);
      }
      named = categoriesQuery(query);
    }
    const categories = readableCategories(service!, named, app.keys.categories, 'categories');
    if (app.keys.isWithheld(userId, categories.list)) throw new PadlockError('KEYCHAIN_PENDING_DELETION');
    // A cache hit answers in this turn of the loop, without a promise.
    const cached = app.keys.peek(userId);
    if (cached !== undefined) return answer(app, service!, cached, categories);
    return app.keys.get(userId).then((keychain) => answer(app, service!, keychain, categories));
  },
};

function answer(app: AppContext, service: Service, keychain: Keychain | null, categories: CategoryChoice): Reply {
  app.metrics.countLookups(service.serviceId, categories.list);
  if (keychain === null) throw new PadlockError('KEYCHAIN_NOT_FOUND');
  const rendered = renderedKeys(app.keys, service, keychain, categories);
  if (rendered.status === 'shredded') throw new PadlockError('KEYCHAIN_SHREDDED');
  return {
    status: 200,
    body: new RenderedBody(rendered, app.keys.maxAgeSeconds(keychain)),
    contentType: 'application/json',
  };
}
