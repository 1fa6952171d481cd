import type { HoldRecord, ScheduleRecord } from '../store/types.js';

/*
 * How schedules and holds are shown (schedule, cancel, status, hold and
 * metadata routes): times as ISO 8601, the MAC and the claim's owner left out.
 */

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function scheduleJson(s: ScheduleRecord, verified: boolean): Record<string, unknown> {
  return {
    scheduleId: s.scheduleId,
    userId: s.userId,
    category: s.category,
    state: s.state === 'pending' && s.claimedBy !== null ? 'executing' : s.state,
    executeAt: iso(s.executeAt),
    serveDuringGrace: s.serveDuringGrace,
    requestedBy: s.requestedBy,
    createdAt: iso(s.createdAt),
    finishedAt: iso(s.finishedAt),
    finishedBy: s.finishedBy,
    verified,
  };
}

export function holdJson(h: HoldRecord, verified: boolean): Record<string, unknown> {
  return {
    holdId: h.holdId,
    userId: h.userId,
    category: h.category,
    reason: h.reason,
    placedBy: h.placedBy,
    placedAt: iso(h.placedAt),
    releasedAt: iso(h.releasedAt),
    releasedBy: h.releasedBy,
    state: h.releasedAt === null ? 'in_force' : 'released',
    verified,
  };
}
