/*
 * Line charts as standalone SVG text, for the benchmark's and DiRT's reports (docs/performance.md,
 * docs/reliability.md). A pure function of its data: no dates, no random ids, so the same results
 * give the same bytes and a committed chart can be regenerated and compared.
 */

const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
const LEGEND_COLUMNS = 3;
const FONT = 'font-family="system-ui, sans-serif"';

/** Text safe inside an SVG element or attribute. */
export function escapeXml(text) {
  return String(text).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Text cut to what fits in `width` pixels at `fontSize` (about 0.6 em a character), with an ellipsis. */
export function fitText(text, width, fontSize) {
  const room = Math.floor(width / (fontSize * 0.6));
  return text.length <= room ? text : `${text.slice(0, Math.max(0, room - 1))}\u2026`;
}

/** A number as short text: 3 significant digits, thousands as k. */
export function shortNumber(value) {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toPrecision(3)}k`;
  return `${+value.toPrecision(3)}`;
}

/** Tick values: 1, 2, 5 x 10^k within [min, max] on a log axis; about `count` round values on a linear one. */
export function ticks(min, max, log, count = 5) {
  if (log) {
    const out = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(+v.toPrecision(6));
      }
    }
    return out;
  }
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(6));
  return out;
}

/** The axis range: the data's, widened to round values; log axes need positive values. */
function domain(values, axis) {
  const usable = values.filter((v) => Number.isFinite(v) && (!axis.log || v > 0));
  let min = axis.min ?? Math.min(...usable);
  let max = axis.max ?? Math.max(...usable);
  if (usable.length === 0) [min, max] = axis.log ? [1, 10] : [0, 1];
  if (axis.log) {
    if (axis.min === undefined) min = 10 ** Math.floor(Math.log10(min));
    if (axis.max === undefined) max = 10 ** Math.ceil(Math.log10(max));
    if (min === max) max = min * 10;
  } else {
    if (axis.min === undefined && min > 0) min = 0;
    if (min === max) max = min + 1;
    if (axis.max === undefined) max = ticks(min, max, false).at(-1) < max ? max * 1.05 : max;
  }
  return [min, max];
}

/**
 * One chart as an SVG document.
 *
 * @param {object} chart
 * @param {string} chart.title
 * @param {string} [chart.subtitle] a second, smaller line: where the data comes from
 * @param {{label: string, log?: boolean, min?: number, max?: number}} chart.x
 * @param {{label: string, log?: boolean, min?: number, max?: number}} chart.y
 * @param {{name: string, points: [number, number][], step?: boolean}[]} chart.series
 *   points in x order; a point with a value that is not finite (or not positive on a log axis) is left out
 * @param {{from: number, to: number, label: string}[]} [chart.bands] shaded x ranges (a fault's window)
 * @param {number} [chart.width]
 * @param {number} [chart.height]
 * @returns {string}
 * @example
 *   writeFileSync('p99.svg', lineChart({ title: 'p99', x: { label: 'req/s' }, y: { label: 'ms', log: true },
 *     series: [{ name: 'p99', points: [[1000, 1.2], [2000, 3.4]] }] }));
 */
export function lineChart({ title, subtitle, x, y, series, bands = [], width = 640, height = 360 }) {
  const margin = { top: subtitle === undefined ? 34 : 46, right: 16, bottom: 46, left: 62 };
  const legendRows = Math.ceil(series.length / LEGEND_COLUMNS);
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom - legendRows * 18;
  const usable = (v, axis) => Number.isFinite(v) && (!axis.log || v > 0);
  const kept = series.map((s) => ({ ...s, points: s.points.filter(([px, py]) => usable(px, x) && usable(py, y)) }));
  const [x0, x1] = domain(
    [...kept.flatMap((s) => s.points.map((p) => p[0])), ...bands.flatMap((b) => [b.from, b.to])],
    x,
  );
  const [y0, y1] = domain(
    kept.flatMap((s) => s.points.map((p) => p[1])),
    y,
  );
  const scale = (v, lo, hi, log) => (log ? Math.log10(v / lo) / Math.log10(hi / lo) : (v - lo) / (hi - lo));
  const px = (v) => +(margin.left + scale(v, x0, x1, x.log) * plotW).toFixed(1);
  const py = (v) => +(margin.top + plotH - scale(Math.min(Math.max(v, y0), y1), y0, y1, y.log) * plotH).toFixed(1);

  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="11">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">${escapeXml(fitText(title, width - 8, 13))}</text>`,
  ];
  if (subtitle !== undefined) {
    out.push(
      `<text x="${width / 2}" y="33" text-anchor="middle" font-size="10" fill="#666">${escapeXml(subtitle)}</text>`,
    );
  }
  for (const band of bands) {
    const left = px(Math.max(band.from, x0));
    const right = px(Math.min(band.to, x1));
    out.push(
      `<rect x="${left}" y="${margin.top}" width="${+(right - left).toFixed(1)}" height="${plotH}" fill="#f4c7c3" fill-opacity="0.5"/>`,
      `<text x="${+((left + right) / 2).toFixed(1)}" y="${margin.top + 12}" text-anchor="middle" fill="#a33">${escapeXml(band.label)}</text>`,
    );
  }
  for (const v of ticks(x0, x1, x.log)) {
    out.push(
      `<line x1="${px(v)}" y1="${margin.top}" x2="${px(v)}" y2="${margin.top + plotH}" stroke="#e5e5e5"/>`,
      `<text x="${px(v)}" y="${margin.top + plotH + 14}" text-anchor="middle">${shortNumber(v)}</text>`,
    );
  }
  for (const v of ticks(y0, y1, y.log)) {
    out.push(
      `<line x1="${margin.left}" y1="${py(v)}" x2="${margin.left + plotW}" y2="${py(v)}" stroke="#e5e5e5"/>`,
      `<text x="${margin.left - 6}" y="${py(v) + 4}" text-anchor="end">${shortNumber(v)}</text>`,
    );
  }
  out.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 32}" text-anchor="middle">${escapeXml(x.label)}</text>`,
    `<text transform="translate(14 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(y.label)}</text>`,
  );
  if (kept.every((s) => s.points.length === 0)) {
    out.push(`<text x="${margin.left + plotW / 2}" y="${margin.top + plotH / 2}" text-anchor="middle">no data</text>`);
  }
  kept.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const coords = [];
    s.points.forEach(([vx, vy], j) => {
      if (s.step && j > 0) coords.push(`${px(vx)},${py(s.points[j - 1][1])}`);
      coords.push(`${px(vx)},${py(vy)}`);
    });
    if (coords.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${coords.join(' ')}"/>`);
    }
    if (!s.step) {
      for (const [vx, vy] of s.points) out.push(`<circle cx="${px(vx)}" cy="${py(vy)}" r="2.6" fill="${color}"/>`);
    }
    const lx = margin.left + (i % LEGEND_COLUMNS) * (plotW / LEGEND_COLUMNS);
    const ly = height - 8 - (legendRows - 1 - Math.floor(i / LEGEND_COLUMNS)) * 18;
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${color}" stroke-width="2.5"/>`,
      `<text x="${lx + 22}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * Charts stacked in one SVG document, one below the other (each as a nested svg element).
 *
 * @param {string} title
 * @param {string[]} charts SVG documents from lineChart
 * @returns {string}
 */
export function stackCharts(title, charts) {
  const sizes = charts.map((svg) => {
    const m = /^<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg);
    if (m === null) throw new Error('stackCharts takes lineChart output');
    return [Number(m[1]), Number(m[2])];
  });
  const width = Math.max(...sizes.map((s) => s[0]));
  let top = 0;
  const parts = charts.map((svg, i) => {
    const y = top;
    top += sizes[i][1];
    return svg.replace(/^<svg /, `<svg y="${y}" `).trimEnd();
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top}" viewBox="0 0 ${width} ${top}">`,
    `<title>${escapeXml(title)}</title>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
