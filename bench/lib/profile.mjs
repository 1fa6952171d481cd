import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/*
 * Reads a V8 .cpuprofile (node --cpu-prof) and answers where the time went:
 * self time per function (the samples whose top frame it was), summed over
 * every node of the call tree with the same function, file and line.
 */

function place(frame, root) {
  const url = frame.url.startsWith('file://') ? relative(root, new URL(frame.url).pathname) : frame.url;
  if (url === '') return '';
  return `${url}:${frame.lineNumber + 1}`;
}

/**
 * @param {string} path a .cpuprofile file
 * @param {string} root paths are shown relative to this directory
 * @param {number} top how many functions to return
 * @param {{ startUs: number, endUs: number }[] | undefined} windows only samples taken in these
 *   intervals of the system's monotonic clock (process.hrtime in any process; V8 stamps samples
 *   with the same clock), e.g. the measured parts of load runs without start-up and warm-up
 */
export function topSelfTime(path, root, top = 25, windows = undefined) {
  const profile = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  let t = profile.startTime;
  let inWindow = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (windows !== undefined && !windows.some((w) => t >= w.startUs && t < w.endUs)) continue;
    inWindow += 1;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  if (windows !== undefined && inWindow === 0) {
    // The clocks did not line up: fall back to the whole profile, and say so.
    return {
      ...topSelfTime(path, root, top),
      window: 'the whole server process (the measured window matched no sample)',
    };
  }
  const totals = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id).callFrame;
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const key = `${name}\u0000${place(frame, root)}`;
    totals.set(key, (totals.get(key) ?? 0) + us);
  }
  const functions = [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us]) => {
      const [fn, where] = key.split('\u0000');
      return { function: fn, where, selfMs: Math.round(us / 1000), selfPercent: Math.round((us / total) * 1000) / 10 };
    });
  const byArea = new Map();
  for (const [key, us] of totals) {
    const where = key.split('\u0000')[1];
    const area = where.startsWith('packages/')
      ? where.split('/').slice(0, 2).join('/')
      : where.startsWith('node:')
        ? 'node internals (JS)'
        : where === ''
          ? 'native, GC and runtime'
          : 'dependencies';
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  return {
    window:
      windows === undefined
        ? 'the whole server process'
        : `the measured windows only (${(windows.reduce((n, w) => n + w.endUs - w.startUs, 0) / 1e6).toFixed(1)} s; start-up, cache warm-up and load warm-up excluded)`,
    busyMs: Math.round(total / 1000),
    idleMs: Math.round(idle / 1000),
    functions,
    areas: [...byArea]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, selfPercent: Math.round((us / total) * 1000) / 10 })),
  };
}
