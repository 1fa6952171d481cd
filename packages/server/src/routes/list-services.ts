import { requireAdmin, type Route } from '../http/route.js';
import { serviceJson } from '../console/service-admin.js';

export const listServices: Route = {
  method: 'GET',
  path: '/v1/services',
  operationId: 'listServices',
  summary: 'List services: their rights, TLS identities and credential ids (operators only)',
  description:
    'Read from the store. Never a credential, verifier or key: credentials are listed by id with their times. ' +
    '`verified: false` marks a service whose rows fail their MAC check (changed without the KEK).',
  auth: true,
  operator: true,
  responses: { 200: 'The services, by id', 401: 'Bad credential', 403: 'Not an operator' },
  async handle({ service, app }) {
    requireAdmin(service!);
    const admin = app.services!;
    const records = await admin.list();
    records.sort((a, b) => a.serviceId.localeCompare(b.serviceId));
    return { status: 200, body: { services: records.map((r) => serviceJson(r, admin.verified(r))) } };
  },
};
