import type { Route } from '../http/route.js';

/* The unauthenticated operations routes, for load balancers and scrapers on the private network. */

export const healthz: Route = {
  method: 'GET',
  path: '/healthz',
  operationId: 'healthz',
  summary: 'Liveness: the process answers',
  description: 'Always 200 while the process runs; it checks nothing else.',
  auth: false,
  responses: { 200: 'Alive' },
  handle: () => ({ status: 200, body: { status: 'ok' } }),
};

export const readyz: Route = {
  method: 'GET',
  path: '/readyz',
  operationId: 'readyz',
  summary:
    'Readiness: the store answers, the service registry is loaded, the store is not behind the shred journal, the server is not draining; store integrity failures are named',
  description:
    'Details name each check; a degraded cache is reported but does not make the server unready, and neither do ' +
    'services whose store rows fail their MAC check (`integrity`): they run on their last verified state.',
  auth: false,
  responses: { 200: 'Ready', 503: 'Not ready; details say which check failed' },
  async handle({ app }) {
    const { ready, checks } = await app.readiness();
    return { status: ready ? 200 : 503, body: { ready, checks } };
  },
};

export const metrics: Route = {
  method: 'GET',
  path: '/metrics',
  operationId: 'metrics',
  summary: 'Prometheus metrics',
  description: 'Request counts and latency by route and status, cache hits and misses, store latency.',
  auth: false,
  responses: { 200: 'Text exposition format 0.0.4' },
  handle: ({ app }) => ({ status: 200, body: app.metrics.render(), contentType: 'text/plain; version=0.0.4' }),
};

export const openapi: Route = {
  method: 'GET',
  path: '/openapi.json',
  operationId: 'openapi',
  summary: 'This API as OpenAPI 3.1',
  description: 'Generated from the route table the server runs.',
  auth: false,
  responses: { 200: 'OpenAPI document' },
  handle: ({ app }) => ({ status: 200, body: app.openapi() }),
};
