import { PadlockError } from '@padlock/core';
import { categoryFrom, requireRight, userIdFrom, CATEGORY_SCHEMA, type Route } from '../http/route.js';
import { scheduleJson } from './lifecycle-json.js';

/** The longest grace period accepted: far enough for any retention rule, short of a typo's 1000 years. */
const MAX_GRACE_MS = 10 * 366 * 24 * 3600 * 1000;

export const scheduleShred: Route = {
  method: 'POST',
  path: '/v1/keychains/{userId}/schedules',
  operationId: 'scheduleShred',
  summary: 'Schedule the shred of a keychain or one category after a grace period',
  description:
    'Shreds the whole keychain (no category) or one category once, at or after executeAt (an ISO 8601 time, or ' +
    'graceSeconds from now), by whichever Padlock node claims it first; cancellable until a node starts it. ' +
    'serveDuringGrace chooses whether lookups still get the keys meanwhile (false: they answer 410 ' +
    'KEYCHAIN_PENDING_DELETION). A schedule that falls due under a legal hold waits for its release. Needs the ' +
    'shred right.',
  auth: true,
  operator: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['serveDuringGrace'],
    properties: {
      category: CATEGORY_SCHEMA,
      executeAt: { type: 'string', maxLength: 40 },
      graceSeconds: { type: 'integer', minimum: 0 },
      serveDuringGrace: { type: 'boolean' },
    },
  },
  responses: {
    201: 'Scheduled; the schedule',
    400: 'Bad body, user id, category or time',
    401: 'Bad credential',
    403: 'The service may not shred keychains',
    404: 'No keychain',
  },
  async handle({ params, body, service, app }) {
    requireRight(service!, 'shred');
    const userId = userIdFrom(params['userId'], 'userId');
    const b = body as { category?: string; executeAt?: string; graceSeconds?: number; serveDuringGrace: boolean };
    const category = b.category === undefined ? undefined : categoryFrom(b.category, 'category', app.keys.categories);
    const executeAt = executeAtFrom(b.executeAt, b.graceSeconds, Date.now());
    const schedule = await app.lifecycle.schedule({
      userId,
      category,
      executeAt,
      serveDuringGrace: b.serveDuringGrace,
      requestedBy: service!.serviceId,
    });
    return { status: 201, body: scheduleJson(schedule, true) };
  },
};

/** executeAt from exactly one of an ISO 8601 time or a grace period in seconds. */
export function executeAtFrom(executeAt: string | undefined, graceSeconds: number | undefined, now: number): number {
  if ((executeAt === undefined) === (graceSeconds === undefined))
    throw new PadlockError('INVALID_REQUEST', 'give exactly one of executeAt and graceSeconds');
  const at =
    executeAt !== undefined
      ? /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,3})?)?(Z|[+-]\d\d:\d\d)$/.test(executeAt)
        ? Date.parse(executeAt)
        : NaN
      : now + graceSeconds! * 1000;
  if (!Number.isFinite(at))
    throw new PadlockError(
      'INVALID_REQUEST',
      'executeAt must be an ISO 8601 time with a zone, e.g. 2027-01-31T00:00:00Z',
    );
  if (at > now + MAX_GRACE_MS) throw new PadlockError('INVALID_REQUEST', 'executeAt is more than 10 years away');
  return Math.max(at, 0);
}
