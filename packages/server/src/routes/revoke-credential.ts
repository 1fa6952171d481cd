import { PadlockError, SERVICE_ID_PATTERN } from '@padlock/core';
import { requireAdmin, type Route } from '../http/route.js';

export const revokeCredential: Route = {
  method: 'DELETE',
  path: '/v1/services/{serviceId}/credentials/{credentialId}',
  operationId: 'revokeCredential',
  summary: 'Revoke one credential of a service (operators only)',
  description:
    'This server refuses it at once; others within services.refreshSeconds. Console sessions signed in with ' +
    'it end with it. Audited as credential.revoke.',
  auth: true,
  operator: true,
  responses: {
    200: 'Revoked',
    401: 'Bad credential',
    403: 'Not an operator',
    404: 'No such service, or no live credential with that id (CREDENTIAL_NOT_FOUND)',
  },
  async handle({ params, service, app }) {
    requireAdmin(service!);
    const serviceId = params['serviceId'] ?? '';
    const credentialId = params['credentialId'] ?? '';
    if (!SERVICE_ID_PATTERN.test(serviceId)) throw new PadlockError('INVALID_REQUEST', 'serviceId is malformed');
    if (!/^[0-9a-f]{16}$/.test(credentialId)) throw new PadlockError('INVALID_REQUEST', 'credentialId is malformed');
    const admin = app.services!;
    if (!(await admin.writer(service!.serviceId).revokeCredential(serviceId, credentialId, Date.now()))) {
      throw new PadlockError('CREDENTIAL_NOT_FOUND', `service "${serviceId}" has no live credential "${credentialId}"`);
    }
    await admin.refresh();
    return { status: 200, body: { serviceId, credentialId, revoked: true } };
  },
};
