import { PadlockError } from '@padlock/core';
import type { Route } from '../http/route.js';
import { CONSOLE_HEADERS } from '../console/assets.js';

export const consolePage: Route = {
  method: 'GET',
  path: '/console/{file}',
  operationId: 'consolePage',
  summary: 'The operator console: its page, script and style (when console.enabled)',
  description:
    'Static files built by `npm run build`, served with a strict Content-Security-Policy (no inline script, ' +
    'nothing from another origin, no framing). 404 when the console is disabled. See docs/console.md.',
  auth: false,
  responses: { 200: 'The file', 404: 'No such file, or the console is disabled' },
  handle({ params, app }) {
    const asset = app.console?.assets.get(params['file'] ?? '');
    if (asset === undefined) throw new PadlockError('ROUTE_NOT_FOUND', 'no such console file');
    return { status: 200, body: asset.body, contentType: asset.contentType, headers: CONSOLE_HEADERS };
  },
};
