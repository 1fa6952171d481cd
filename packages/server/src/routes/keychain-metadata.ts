import { userIdFrom, type Route } from '../http/route.js';
import { holdJson, scheduleJson } from './lifecycle-json.js';

export const keychainMetadata: Route = {
  method: 'GET',
  path: '/v1/keychains/{userId}',
  operationId: 'getKeychainMetadata',
  summary:
    "A keychain's metadata: categories, versions, states and times, schedules, holds and receipts; never key bytes",
  description:
    'Read from the store at its strongest local consistency, not from a cache. Any authenticated service may ask. ' +
    'A category with a pending scheduled shred is in state pending_deletion, with the time; `schedules` lists ' +
    'every scheduled shred (pending, executing, executed, cancelled) and `holds` every legal hold, in force or ' +
    'released; a row that fails its integrity check is shown with verified: false and never acted on.',
  auth: true,
  operator: true,
  responses: { 200: 'Metadata', 400: 'Bad user id', 401: 'Bad credential', 404: 'No keychain' },
  async handle({ params, app }) {
    const userId = userIdFrom(params['userId'], 'userId');
    const [rows, receipts] = await Promise.all([app.keys.metadata(userId), app.keys.receiptsOf(userId)]);
    const { schedules, holds } = await app.lifecycle.status(userId);
    const pending = schedules.filter((s) => s.verified && s.state === 'pending');
    const pendingFor = (category: string): number | undefined => {
      const times = pending.filter((s) => s.category === null || s.category === category).map((s) => s.executeAt);
      return times.length === 0 ? undefined : Math.min(...times);
    };
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
        categories: [...categories].map(([category, versions]) => {
          const live = versions.some((v) => v.state === 'active');
          const executeAt = live ? pendingFor(category) : undefined;
          return {
            category,
            state: !live ? 'shredded' : executeAt !== undefined ? 'pending_deletion' : 'active',
            ...(executeAt === undefined ? {} : { pendingDeletionAt: new Date(executeAt).toISOString() }),
            heldBy: holds
              .filter((h) => h.releasedAt === null && (h.category === null || h.category === category))
              .map((h) => h.holdId),
            versions,
          };
        }),
        schedules: schedules.map((s) => scheduleJson(s, s.verified)),
        holds: holds.map((h) => holdJson(h, h.verified)),
        receipts: receipts.map((r) => ({ id: r.receiptId, issuedAt: new Date(r.issuedAt).toISOString() })),
      },
    };
  },
};
