import { PadlockError } from '@padlock/core';
import { CATEGORY_SCHEMA, readableCategories, USER_ID_SCHEMA, type Reply, type Route } from '../http/route.js';
import type { Keychain, RenderedKeys } from '../keychain.js';
import { renderedKeys, writeMaxAge } from '../http/serialize.js';

const RESULTS_OPEN = Buffer.from('{"results":[');
const COMMA = 0x2c;
const RESULTS_CLOSE = Buffer.from(']}');

export const batchGet: Route = {
  method: 'POST',
  path: '/v1/keys/batch-get',
  operationId: 'batchGetKeys',
  summary: 'Derived keys of many users in one call',
  description:
    'Results come in input order, each with its own status: ok, not_found, shredded or pending_deletion (withheld during a grace period). Up to limits.maxBatch ' +
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
  handle({ body, service, app }) {
    const { userIds, categories: named } = body as { userIds: unknown[]; categories?: unknown[] };
    if (userIds.length > app.maxBatch) {
      throw new PadlockError(
        'BATCH_TOO_LARGE',
        `userIds holds ${userIds.length} ids; at most ${app.maxBatch} are allowed`,
      );
    }
    // The body schema has checked every id against the user id grammar.
    const ids = userIds as string[];
    const categories = readableCategories(service!, named, app.keys.categories, 'categories');
    app.metrics.countLookups(service!.serviceId, categories.list, ids.length);
    // Users the in-process cache holds are answered at once; the others are read in one getMany.
    const found: (Keychain | null | undefined)[] = app.keys.peekMany(ids);
    const missing = ids.filter((_, i) => found[i] === undefined);
    const answer = (): Reply => {
      // {"results":[...]}: each ok user's rendered answer, or its id and status; sized, then written.
      const rendered: (RenderedKeys | string)[] = [];
      let size = RESULTS_OPEN.length + RESULTS_CLOSE.length + ids.length - 1;
      ids.forEach((id, i) => {
        const keychain = found[i] ?? null;
        const withheld = keychain !== null && app.keys.isWithheld(id, categories.list);
        const r = keychain === null || withheld ? undefined : renderedKeys(app.keys, service!, keychain, categories);
        const status = withheld ? 'pending_deletion' : (r?.status ?? 'not_found');
        const item = r?.status === 'ok' ? r : `{"userId":${JSON.stringify(id)},"status":"${status}"}`;
        size += item.length;
        rendered.push(item);
      });
      const out = Buffer.allocUnsafe(size);
      const now = Date.now();
      out.set(RESULTS_OPEN, 0);
      let at = RESULTS_OPEN.length;
      rendered.forEach((item, i) => {
        if (i > 0) out[at++] = COMMA;
        if (typeof item === 'string') {
          at += out.write(item, at, 'latin1');
        } else {
          item.bytes.copy(out, at, item.start, item.start + item.length);
          writeMaxAge(out, at, item, app.keys.maxAgeSeconds(found[i]!, now));
          at += item.length;
        }
      });
      out.set(RESULTS_CLOSE, at);
      return { status: 200, body: out, contentType: 'application/json' };
    };
    if (missing.length === 0) return answer();
    return app.keys.getMany(missing).then((read) => {
      ids.forEach((id, i) => {
        if (found[i] === undefined) found[i] = read.get(id) ?? null;
      });
      return answer();
    });
  },
};
