import { userIdFrom, type Route } from '../http/route.js';

export const keychainMetadata: Route = {
  method: 'GET',
  path: '/v1/keychains/{userId}',
  operationId: 'getKeychainMetadata',
  summary: "A keychain's metadata: categories, versions, states and times, receipts; never key bytes",
  description:
    'Read from the store at its strongest local consistency, not from a cache. Any authenticated service may ask.',
  auth: true,
  responses: { 200: 'Metadata', 400: 'Bad user id', 401: 'Bad credential', 404: 'No keychain' },
  async handle({ params, app }) {
    const userId = userIdFrom(params['userId'], 'userId');
    const [rows, receipts] = await Promise.all([app.keys.metadata(userId), app.keys.receiptsOf(userId)]);
    const categories = new Map<
      string,
      { version: number; state: string; createdAt: string; shreddedAt: string | null }[]
    >();
    for (const row of rows) {
      const versions = categories.get(row.category) ?? [];
      versions.push({
        version: row.version,
        state: row.wrapped === null ? 'shredded' : 'active',
        createdAt: new Date(row.createdAt).toISOString(),
        shreddedAt: row.shreddedAt === null ? null : new Date(row.shreddedAt).toISOString(),
      });
      categories.set(row.category, versions);
    }
    return {
      status: 200,
      body: {
        userId,
        categories: [...categories].map(([category, versions]) => ({
          category,
          state: versions.some((v) => v.state === 'active') ? 'active' : 'shredded',
          versions,
        })),
        receipts: receipts.map((r) => ({ id: r.receiptId, issuedAt: new Date(r.issuedAt).toISOString() })),
      },
    };
  },
};
