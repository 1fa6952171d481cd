import { PadlockError } from '@padlock/core';
import { CATEGORY_SCHEMA, readableCategories, userIdFrom, USER_ID_SCHEMA, type Route } from '../http/route.js';
import { renderedKeys, renderedParts } from '../http/serialize.js';
import { BodyParts } from '../http/wire.js';

const RESULTS_OPEN = Buffer.from('{"results":[');
const COMMA = Buffer.from(',');
const RESULTS_CLOSE = Buffer.from(']}');

export const batchGet: Route = {
  method: 'POST',
  path: '/v1/keys/batch-get',
  operationId: 'batchGetKeys',
  summary: 'Derived keys of many users in one call',
  description:
    'Results come in input order, each with its own status: ok, not_found or shredded. Up to limits.maxBatch ' +
    '(500 by default) user ids; repeated ids are answered each time. Categories as in getKeys.',
  auth: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['userIds'],
    properties: {
      userIds: { type: 'array', minItems: 1, items: USER_ID_SCHEMA },
      categories: { type: 'array', items: CATEGORY_SCHEMA },
    },
  },
  responses: {
    200: 'One result per requested user id, in order',
    400: 'Bad body, user id or category, or too many user ids',
    401: 'Bad credential',
    403: 'A category the service may not read',
  },
  async handle({ body, service, app }) {
    const { userIds, categories: named } = body as { userIds: unknown[]; categories?: unknown[] };
    if (userIds.length > app.maxBatch) {
      throw new PadlockError(
        'BATCH_TOO_LARGE',
        `userIds holds ${userIds.length} ids; at most ${app.maxBatch} are allowed`,
      );
    }
    const ids = userIds.map((id, i) => userIdFrom(id, `userIds[${i}]`));
    const categories = readableCategories(service!, named, app.keys.categories, 'categories');
    const keychains = await app.keys.getMany(ids);
    // {"results":[...]}: each ok user's rendered answer, or its id and status.
    const parts: (Buffer | string)[] = [RESULTS_OPEN];
    ids.forEach((id, i) => {
      if (i > 0) parts.push(COMMA);
      const keychain = keychains.get(id) ?? null;
      const rendered = keychain === null ? undefined : renderedKeys(app.keys, service!, keychain, categories);
      if (keychain !== null && rendered?.status === 'ok') {
        renderedParts(rendered, app.keys.maxAgeSeconds(keychain), parts);
      } else {
        const status = rendered?.status ?? 'not_found';
        parts.push(`{"userId":${JSON.stringify(id)},"status":"${status}"}`);
      }
    });
    parts.push(RESULTS_CLOSE);
    return { status: 200, body: new BodyParts(parts), contentType: 'application/json' };
  },
};
