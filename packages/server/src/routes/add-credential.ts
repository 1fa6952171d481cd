import { PadlockError, SERVICE_ID_PATTERN } from '@padlock/core';
import { requireAdmin, type Route } from '../http/route.js';
import { newCredential } from '../services.js';

export const addCredential: Route = {
  method: 'POST',
  path: '/v1/services/{serviceId}/credentials',
  operationId: 'addCredential',
  summary: 'Add a credential to a service (rotation), shown once (operators only)',
  description:
    'The answer holds the new credential once; only its verifier is stored. Other credentials stay live until ' +
    'revoked. Audited as credential.add (the id only).',
  auth: true,
  operator: true,
  responses: {
    201: 'The credential id and the credential (shown once)',
    401: 'Bad credential',
    403: 'Not an operator',
    404: 'No such service (SERVICE_NOT_FOUND)',
  },
  async handle({ params, service, app }) {
    requireAdmin(service!);
    const serviceId = params['serviceId'] ?? '';
    if (!SERVICE_ID_PATTERN.test(serviceId)) throw new PadlockError('INVALID_REQUEST', 'serviceId is malformed');
    const admin = app.services!;
    const { credential, record } = newCredential(serviceId, Date.now());
    if (!(await admin.writer(service!.serviceId).addCredential(serviceId, record))) {
      throw new PadlockError('SERVICE_NOT_FOUND', `no service "${serviceId}"`);
    }
    await admin.refresh();
    return {
      status: 201,
      body: { serviceId, credentialId: record.credentialId, credential },
    };
  },
};
