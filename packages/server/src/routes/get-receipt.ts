import { PadlockError } from '@padlock/core';
import type { Route } from '../http/route.js';

const RECEIPT_ID = /^[0-9a-f]{32}$/;

export const getReceipt: Route = {
  method: 'GET',
  path: '/v1/receipts/{receiptId}',
  operationId: 'getReceipt',
  summary: 'A signed deletion receipt by id',
  description:
    'The compact JWS a shred issued (docs/spec.md, "Deletion receipt"); a scheduled shred has no caller to ' +
    "answer, so its receipt is fetched here (its id is in the keychain's metadata). Any authenticated service " +
    'may ask, as for keychain metadata: a receipt names a user, categories, versions and times, never a key.',
  auth: true,
  operator: true,
  responses: {
    200: 'The receipt: id, userId, issuedAt and jws',
    400: 'The receipt id is not 32 lower-case hex characters',
    401: 'Bad credential',
    404: 'No receipt has that id',
  },
  async handle({ params, app }) {
    const receiptId = params['receiptId'] ?? '';
    if (!RECEIPT_ID.test(receiptId))
      throw new PadlockError('INVALID_REQUEST', 'receiptId must be 32 lower-case hex characters');
    const receipt = await app.keys.getReceipt(receiptId);
    if (receipt === undefined) throw new PadlockError('RECEIPT_NOT_FOUND');
    return {
      status: 200,
      body: {
        id: receipt.receiptId,
        userId: receipt.userId,
        issuedAt: new Date(receipt.issuedAt).toISOString(),
        jws: receipt.jws,
      },
    };
  },
};
