import { userIdFrom, type Route } from '../http/route.js';
import { scheduleIdFrom } from './cancel-schedule.js';
import { scheduleJson } from './lifecycle-json.js';

export const scheduleStatus: Route = {
  method: 'GET',
  path: '/v1/keychains/{userId}/schedules/{scheduleId}',
  operationId: 'getSchedule',
  summary: "A scheduled shred's state: pending, executing, executed or cancelled, with its times",
  description:
    "Read at the store's strongest consistency. Any authenticated service may ask; the keychain metadata " +
    'lists every schedule of the user.',
  auth: true,
  operator: true,
  responses: {
    200: 'The schedule',
    400: 'Bad user id or schedule id',
    401: 'Bad credential',
    404: 'No such schedule for this user',
    500: 'The schedule row failed its integrity check (ROW_INTEGRITY)',
  },
  async handle({ params, app }) {
    const userId = userIdFrom(params['userId'], 'userId');
    const schedule = await app.lifecycle.getSchedule(userId, scheduleIdFrom(params['scheduleId']));
    return { status: 200, body: scheduleJson(schedule, true) };
  },
};
