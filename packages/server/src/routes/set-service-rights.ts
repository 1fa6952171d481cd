import { PadlockError, SERVICE_ID_PATTERN } from '@padlock/core';
import { requireAdmin, type Route } from '../http/route.js';
import { applyRights, RIGHT_SCHEMA } from '../console/service-admin.js';

export const setServiceRights: Route = {
  method: 'POST',
  path: '/v1/services/{serviceId}/rights',
  operationId: 'setServiceRights',
  summary: "Grant or revoke a service's rights (operators only)",
  description:
    '`action` grant adds the rights named, revoke takes them away; others stay as they are. Rights: create, ' +
    'rotate, shred, hold, admin, read:<category>. An operator may not also hold read, create or rotate ' +
    '(INVALID_PERMISSIONS). Audited as service.grant or service.revoke with the rights after the change.',
  auth: true,
  operator: true,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['action', 'rights'],
    properties: {
      action: { enum: ['grant', 'revoke'] },
      rights: { type: 'array', minItems: 1, maxItems: 80, uniqueItems: true, items: RIGHT_SCHEMA },
    },
  },
  responses: {
    200: 'The rights after the change',
    400: 'Bad body, unknown category, or rights that cannot be held together',
    401: 'Bad credential',
    403: 'Not an operator',
    404: 'No such service (SERVICE_NOT_FOUND)',
  },
  async handle({ params, body, service, app }) {
    requireAdmin(service!);
    const serviceId = params['serviceId'] ?? '';
    if (!SERVICE_ID_PATTERN.test(serviceId)) throw new PadlockError('INVALID_REQUEST', 'serviceId is malformed');
    const admin = app.services!;
    const b = body as { action: 'grant' | 'revoke'; rights: string[] };
    const current = await admin.get(serviceId);
    const permissions = applyRights(current.permissions, b.rights, b.action, admin.categories);
    const done = await admin.writer(service!.serviceId).setPermissions(serviceId, permissions, `service.${b.action}`);
    if (!done) throw new PadlockError('SERVICE_NOT_FOUND', `no service "${serviceId}"`);
    await admin.refresh();
    return { status: 200, body: { serviceId, permissions: { ...permissions, admin: permissions.admin === true } } };
  },
};
