import { PadlockError } from '@padlock/core';
import type { Route } from '../http/route.js';

export const consoleSignOut: Route = {
  method: 'DELETE',
  path: '/console/api/session',
  operationId: 'consoleSignOut',
  summary: 'Sign out: the session ends on the server and its cookie is cleared',
  description: 'Needs the X-Padlock-CSRF header like every state-changing console request.',
  auth: true,
  operator: true,
  responses: { 200: 'Signed out', 401: 'No live session', 403: 'Missing or wrong CSRF token' },
  handle({ session, app }) {
    if (session === undefined || app.console === undefined) {
      throw new PadlockError('UNAUTHENTICATED', 'no console session');
    }
    app.console.sessions.signOut(session);
    return { status: 200, body: { signedOut: true }, headers: { 'set-cookie': app.console.sessions.clearCookie() } };
  },
};
