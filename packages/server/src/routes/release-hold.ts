import { PadlockError } from '@padlock/core';
import { requireRight, userIdFrom, type Route } from '../http/route.js';
import { holdJson } from './lifecycle-json.js';

export const releaseHold: Route = {
  method: 'DELETE',
  path: '/v1/keychains/{userId}/holds/{holdId}',
  operationId: 'releaseHold',
  summary: 'Release a legal hold',
  description:
    'The hold row stays, with releasedAt and releasedBy. Shreds it blocked may run again; schedules that fell ' +
    'due under it run at the next scheduler pass. Needs the hold right.',
  auth: true,
  operator: true,
  responses: {
    200: 'Released; the hold',
    400: 'Bad user id or hold id',
    401: 'Bad credential',
    403: 'The service may not place holds',
    404: 'No such hold in force (HOLD_NOT_FOUND)',
    500: 'The hold row failed its integrity check (ROW_INTEGRITY)',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'hold');
    const userId = userIdFrom(params['userId'], 'userId');
    const holdId = params['holdId'];
    if (holdId === undefined || !/^hold-[0-9a-f-]{36}$/.test(holdId))
      throw new PadlockError('INVALID_REQUEST', 'holdId must look like hold-<uuid>');
    const hold = await app.lifecycle.releaseHold(userId, holdId, service!.serviceId);
    return { status: 200, body: holdJson(hold, true) };
  },
};
