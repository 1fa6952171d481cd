// The one Prometheus text-format (0.0.4) reader of the tests, bench/ and dirt/: a pure function of
// the text to its families and samples, strict about what it accepts, so a test that reads
// /metrics also checks the exposition is well-formed. Format:
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** Suffixes whose samples belong to the family named without them. */
const SUFFIXES = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

export class PrometheusTextError extends Error {
  constructor(line, message) {
    super(`line ${line}: ${message}`);
    this.name = 'PrometheusTextError';
  }
}

/**
 * Parses an exposition. Throws PrometheusTextError on anything malformed: a bad name, label or
 * value, an escape other than \\ \" \n, a duplicate label, a TYPE given twice or after its samples,
 * a sample of a typed family with a suffix its type does not have, input past `maxBytes`.
 *
 * @example
 *   const { families, samples } = parsePrometheusText('# TYPE x counter\nx{a="1"} 2\n');
 *   // families.get('x').type === 'counter'; samples[0] = { name: 'x', family: 'x', labels: { a: '1' }, value: 2 }
 */
export function parsePrometheusText(text, { maxBytes = 16 * 1024 * 1024 } = {}) {
  if (typeof text !== 'string') throw new TypeError('the exposition must be a string');
  if (text.length > maxBytes) throw new PrometheusTextError(0, `the exposition is longer than ${maxBytes} bytes`);
  const families = new Map();
  const samples = [];
  const seenSamples = new Set();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const at = i + 1;
    if (line === '' || /^\s*$/.test(line)) continue;
    if (line.startsWith('#')) {
      const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (meta === null) continue; // a plain comment
      const [, keyword, name, rest = ''] = meta;
      if (!METRIC_NAME.test(name)) throw new PrometheusTextError(at, `bad metric name ${JSON.stringify(name)}`);
      const family = families.get(name) ?? { name, type: 'untyped', help: undefined, typed: false };
      if (keyword === 'TYPE') {
        const type = rest.trim();
        if (!TYPES.has(type)) throw new PrometheusTextError(at, `unknown type ${JSON.stringify(type)}`);
        if (family.typed) throw new PrometheusTextError(at, `a second TYPE for ${name}`);
        if (seenSamples.has(name)) throw new PrometheusTextError(at, `TYPE for ${name} after its samples`);
        family.type = type;
        family.typed = true;
      } else {
        if (family.help !== undefined) throw new PrometheusTextError(at, `a second HELP for ${name}`);
        family.help = unescape(rest, at, false);
      }
      families.set(name, family);
      continue;
    }
    const sample = parseSample(line, at);
    const family = familyOf(sample.name, families);
    if (family !== undefined && family.name !== sample.name) {
      const allowed = SUFFIXES[family.type] ?? [];
      if (!allowed.some((suffix) => sample.name === family.name + suffix)) {
        throw new PrometheusTextError(at, `${sample.name} is not a sample name of ${family.type} ${family.name}`);
      }
    }
    if (family?.type === 'histogram' && sample.name === `${family.name}_bucket` && !('le' in sample.labels)) {
      throw new PrometheusTextError(at, `a bucket of ${family.name} without le`);
    }
    const familyName = family?.name ?? sample.name;
    seenSamples.add(familyName);
    samples.push({ ...sample, family: familyName });
  }
  const out = new Map();
  for (const [name, { type, help }] of families) out.set(name, { name, type, help });
  return { families: out, samples };
}

function familyOf(sampleName, families) {
  if (families.has(sampleName)) return families.get(sampleName);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const family = families.get(sampleName.slice(0, -suffix.length));
      if (family !== undefined && family.type in SUFFIXES) return family;
    }
  }
  return undefined;
}

function parseSample(line, at) {
  const head = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (head === null) throw new PrometheusTextError(at, 'a sample must start with a metric name');
  const name = head[0];
  let i = name.length;
  // Null prototype: a label named __proto__ or constructor is a label, nothing more.
  const labels = Object.create(null);
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i, i + 1024));
      if (labelName === null) throw new PrometheusTextError(at, `bad label name at column ${i + 1}`);
      const key = labelName[0];
      i += key.length;
      while (line[i] === ' ') i++;
      if (line[i] !== '=' || line[i + 1] !== '"') throw new PrometheusTextError(at, `label ${key} needs ="value"`);
      i += 2;
      let raw = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new PrometheusTextError(at, `the value of label ${key} is not closed`);
        if (c === '"') break;
        if (c === '\\') {
          raw += c + (line[i + 1] ?? '');
          i += 2;
          continue;
        }
        raw += c;
        i++;
      }
      i++;
      if (Object.prototype.hasOwnProperty.call(labels, key)) throw new PrometheusTextError(at, `label ${key} repeated`);
      labels[key] = unescape(raw, at, true);
      while (line[i] === ' ') i++;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new PrometheusTextError(at, `expected , or } after label ${key}`);
    }
  }
  if (line[i] !== ' ' && line[i] !== '\t') throw new PrometheusTextError(at, `${name}: expected a space and a value`);
  const fields = line
    .slice(i)
    .trim()
    .split(/[ \t]+/);
  if (fields.length > 2 || (fields.length === 2 && !/^-?\d{1,19}$/.test(fields[1]))) {
    throw new PrometheusTextError(at, `${name}: expected a value and an optional integer timestamp`);
  }
  const value = parseValue(fields[0], at);
  return { name, labels, value, ...(fields.length === 2 ? { timestamp: Number(fields[1]) } : {}) };
}

function parseValue(text, at) {
  switch (text) {
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  // Number('') is 0 and Number('0x10') 16: only decimal floats are values.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text))
    throw new PrometheusTextError(at, `bad value ${JSON.stringify(text.slice(0, 40))}`);
  return Number(text);
}

function unescape(raw, at, quoteAllowed) {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = raw[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else if (next === '"' && quoteAllowed) out += '"';
    else throw new PrometheusTextError(at, `bad escape \\${next ?? ''}`);
  }
  return out;
}

/**
 * The sum of `name`'s samples whose labels include `labels` (0 when none): a counter over the
 * series a test does not pin down, or one sample when the labels name it whole.
 */
export function metricValue(exposition, name, labels = {}) {
  const { samples } = typeof exposition === 'string' ? parsePrometheusText(exposition) : exposition;
  const wanted = Object.entries(labels);
  let total = 0;
  for (const sample of samples) {
    if (sample.name === name && wanted.every(([k, v]) => sample.labels[k] === v)) total += sample.value;
  }
  return total;
}
