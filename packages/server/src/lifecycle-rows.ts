import type { Kek, KekRing } from '@padlock/core';
import { macRow, verifyRowMac, type MacField } from './row-mac.js';
import type { HoldRecord, ScheduleRecord } from './store/types.js';

/*
 * Hold and schedule rows under their MACs (docs/spec.md, "Row MAC"). Whoever
 * can write the database but lacks the KEK cannot lift a hold, forge one,
 * cancel a deletion or move its time: an edited row fails its MAC and is
 * refused (a hold that fails still blocks shreds: the safe direction).
 * A schedule's claim (claimedBy, leaseUntil) is left out: it is coordination
 * between nodes, changed by conditional writes only, and decides nothing.
 */

export function holdMacFields(h: Omit<HoldRecord, 'mac'>): MacField[] {
  return ['hold', h.holdId, h.userId, h.category, h.reason, h.placedBy, h.placedAt, h.releasedAt, h.releasedBy];
}

export function scheduleMacFields(s: Omit<ScheduleRecord, 'mac' | 'claimedBy' | 'leaseUntil'>): MacField[] {
  return [
    'schedule',
    s.scheduleId,
    s.userId,
    s.category,
    s.executeAt,
    s.serveDuringGrace,
    s.requestedBy,
    s.createdAt,
    s.state,
    s.finishedAt,
    s.finishedBy,
  ];
}

export function sealHold(kek: Kek, h: Omit<HoldRecord, 'mac'>): HoldRecord {
  return { ...h, mac: macRow(kek, holdMacFields(h)) };
}

export function sealSchedule(kek: Kek, s: Omit<ScheduleRecord, 'mac'>): ScheduleRecord {
  return { ...s, mac: macRow(kek, scheduleMacFields(s)) };
}

/** True when the row is exactly as a KEK holder wrote it (a row never sealed fails too). */
export function holdVerifies(keks: KekRing, h: HoldRecord): boolean {
  return verifyRowMac(keks, holdMacFields(h), h.mac) === 'ok';
}

export function scheduleVerifies(keks: KekRing, s: ScheduleRecord): boolean {
  return verifyRowMac(keks, scheduleMacFields(s), s.mac) === 'ok';
}

/** Whether a hold on `holdCategory` (null: the keychain) covers a shred of `category` (undefined: the keychain). */
export function holdCovers(holdCategory: string | null, category: string | undefined): boolean {
  return holdCategory === null || category === undefined || holdCategory === category;
}
