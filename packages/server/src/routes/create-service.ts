import { PadlockError, SERVICE_ID_PATTERN } from '@padlock/core';
import { requireAdmin, type Route } from '../http/route.js';
import { applyRights, RIGHT_SCHEMA } from '../console/service-admin.js';
import { newCredential, newServiceRecord } from '../services.js';

export const createService: Route = {
  method: 'POST',
  path: '/v1/services',
  operationId: 'createService',
  summary: 'Register a service and make its first credential, shown once (operators only)',
  description:
    'Rights are named as in the grant route: create, rotate, shred, hold, admin, read:<category>. The answer ' +
    'holds the credential once; only its verifier is stored. An operator (admin) may not also hold read, create ' +
    'or rotate (INVALID_PERMISSIONS). Audited as service.create and credential.add.',
  auth: true,
  operator: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['serviceId', 'rights'],
    properties: {
      serviceId: { type: 'string', pattern: SERVICE_ID_PATTERN.source },
      rights: { type: 'array', maxItems: 80, uniqueItems: true, items: RIGHT_SCHEMA },
    },
  },
  responses: {
    201: 'Created: the service, its rights and its first credential (shown once)',
    400: 'Bad body, unknown category, or rights that cannot be held together',
    401: 'Bad credential',
    403: 'Not an operator',
    409: 'The service id is taken (SERVICE_EXISTS)',
  },
  async handle({ body, service, app }) {
    requireAdmin(service!);
    const admin = app.services!;
    const b = body as { serviceId: string; rights: string[] };
    const none = { read: [], create: false, rotate: false, shred: false, hold: false };
    const permissions = applyRights(none, b.rights, 'grant', admin.categories);
    const now = Date.now();
    const writer = admin.writer(service!.serviceId);
    if (!(await writer.create(newServiceRecord(admin.keyRing, b.serviceId, permissions, now)))) {
      throw new PadlockError('SERVICE_EXISTS', `service "${b.serviceId}" exists already`);
    }
    const { credential, record } = newCredential(b.serviceId, now);
    await writer.addCredential(b.serviceId, record);
    await admin.refresh();
    return {
      status: 201,
      body: { serviceId: b.serviceId, permissions, credentialId: record.credentialId, credential },
    };
  },
};
