import { PadlockError } from '@padlock/core';
import type { Route } from '../http/route.js';

export const consoleSession: Route = {
  method: 'GET',
  path: '/console/api/session',
  operationId: 'consoleSession',
  summary: 'The console session the cookie names: operator, CSRF token, expiry',
  description:
    'For a page loaded again within its session. 401 without a live session (a bearer credential is not one).',
  auth: true,
  operator: true,
  responses: { 200: 'The session', 401: 'No live session' },
  handle({ session, app }) {
    if (session === undefined) throw new PadlockError('UNAUTHENTICATED', 'no console session');
    return {
      status: 200,
      body: {
        serviceId: session.service.serviceId,
        csrfToken: session.csrfToken,
        expiresAt: new Date(session.expiresAt).toISOString(),
        categories: app.keys.categories,
      },
    };
  },
};
