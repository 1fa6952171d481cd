import { PadlockError } from '@padlock/core';
import type { Route } from '../http/route.js';

export const consoleSignIn: Route = {
  method: 'POST',
  path: '/console/api/session',
  operationId: 'consoleSignIn',
  summary: 'Sign in to the console with an operator credential',
  description:
    'Only a credential of a service with the admin right signs in (any other valid credential: 403). The ' +
    'answer sets an HttpOnly, SameSite=Strict session cookie (Secure under TLS) and holds the CSRF token the ' +
    'page sends in X-Padlock-CSRF with every request that changes state. Sessions last console.sessionMinutes.',
  auth: false,
  operator: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['credential'],
    properties: { credential: { type: 'string', minLength: 1, maxLength: 256 } },
  },
  responses: {
    201: 'Signed in: the operator, the CSRF token and the expiry',
    400: 'Bad body',
    401: 'Bad credential',
    403: 'Not an operator credential',
    404: 'The console is disabled',
  },
  handle({ body, app }) {
    const sessions = app.console?.sessions;
    if (sessions === undefined) throw new PadlockError('ROUTE_NOT_FOUND', 'the console is disabled');
    const { token, session } = sessions.signIn((body as { credential: string }).credential);
    return {
      status: 201,
      body: {
        serviceId: session.service.serviceId,
        csrfToken: session.csrfToken,
        expiresAt: new Date(session.expiresAt).toISOString(),
        categories: app.keys.categories,
      },
      headers: { 'set-cookie': sessions.cookie(token, session.expiresAt) },
    };
  },
};
