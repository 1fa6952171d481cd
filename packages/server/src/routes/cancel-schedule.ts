import { PadlockError } from '@padlock/core';
import { requireRight, userIdFrom, type Route } from '../http/route.js';
import { scheduleJson } from './lifecycle-json.js';

export const cancelSchedule: Route = {
  method: 'DELETE',
  path: '/v1/keychains/{userId}/schedules/{scheduleId}',
  operationId: 'cancelSchedule',
  summary: 'Cancel a scheduled shred before it starts',
  description:
    'Succeeds only while no node has started the schedule: a cancel wins entirely (nothing is shredded) or ' +
    'loses with 409 SCHEDULE_NOT_PENDING (the shred is executing or done, and completes). Needs the shred right.',
  auth: true,
  operator: true,
  responses: {
    200: 'Cancelled; the schedule',
    400: 'Bad user id or schedule id',
    401: 'Bad credential',
    403: 'The service may not shred keychains',
    404: 'No such schedule for this user',
    409: 'Executing, executed or cancelled already (SCHEDULE_NOT_PENDING)',
    500: 'The schedule row failed its integrity check (ROW_INTEGRITY)',
  },
  async handle({ params, service, app }) {
    requireRight(service!, 'shred');
    const userId = userIdFrom(params['userId'], 'userId');
    const scheduleId = scheduleIdFrom(params['scheduleId']);
    const cancelled = await app.lifecycle.cancel(userId, scheduleId, service!.serviceId);
    return { status: 200, body: scheduleJson(cancelled, true) };
  },
};

const SCHEDULE_ID = /^sched-[0-9a-f-]{36}$/;

export function scheduleIdFrom(value: string | undefined): string {
  if (value === undefined || !SCHEDULE_ID.test(value))
    throw new PadlockError('INVALID_REQUEST', 'scheduleId must look like sched-<uuid>');
  return value;
}
