import { ERRORS } from '@padlock/core';
import type { Route } from './http/route.js';

/** OpenAPI 3.1 for the route table, so the document cannot drift from what runs. */
export function openApiDocument(routes: readonly Route[], version: string): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters: unknown[] = [];
    for (const match of route.path.matchAll(/\{(\w+)\}/g)) {
      parameters.push({ name: match[1], in: 'path', required: true, schema: { type: 'string' } });
    }
    for (const q of route.query ?? []) {
      parameters.push({ name: q.name, in: 'query', required: false, description: q.description, schema: q.schema });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(route.responses)) {
      responses[status] = Number(status) >= 400 ? { description, content: errorContent } : { description };
    }
    responses['503'] ??= { description: 'Shed, past its deadline, or the store is unavailable', content: errorContent };
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase()] = {
      operationId: route.operationId,
      summary: route.summary,
      description: route.description,
      ...(route.auth ? { security: [{ credential: [] }] } : { security: [] }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body === undefined
        ? {}
        : { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } }),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Padlock', version, description: 'Per-user key management for crypto-shredding.' },
    components: {
      securitySchemes: { credential: { type: 'http', scheme: 'bearer', description: 'pl1.<service>.<id>.<secret>' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { enum: Object.keys(ERRORS) }, message: { type: 'string' } },
            },
          },
        },
      },
    },
    paths,
  };
}

const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };
