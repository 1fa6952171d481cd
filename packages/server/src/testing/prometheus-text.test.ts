import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { metricValue, parsePrometheusText, PrometheusTextError } from '../../../../scripts/testing/prometheus-text.mjs';
import { Counter, Histogram, Metrics } from '../metrics.js';

describe('prometheus-text: the one exposition reader of tests, bench and dirt', () => {
  it('reads families, labels with escapes, histogram samples and timestamps', () => {
    const text = [
      '# HELP x_seconds a \\\\ help\\nline',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{route="/a{b}",q="say \\"hi\\"\\\\",le="0.5"} 3',
      'x_seconds_bucket{route="/a{b}",q="say \\"hi\\"\\\\",le="+Inf"} 4',
      'x_seconds_sum{route="/a{b}",q="say \\"hi\\"\\\\"} 1.5e-3',
      'x_seconds_count{route="/a{b}",q="say \\"hi\\"\\\\"} 4 1700000000000',
      '# a comment',
      'untyped_thing NaN',
      '',
    ].join('\n');
    const { families, samples } = parsePrometheusText(text);
    assert.deepEqual(families.get('x_seconds'), { name: 'x_seconds', type: 'histogram', help: 'a \\ help\nline' });
    assert.equal(samples.length, 5);
    assert.deepEqual({ ...samples[0]!.labels }, { route: '/a{b}', q: 'say "hi"\\', le: '0.5' });
    assert.equal(samples[1]!.value, 4);
    assert.equal(samples[2]!.value, 0.0015);
    assert.equal(samples[3]!.timestamp, 1700000000000);
    assert.equal(samples[3]!.family, 'x_seconds');
    assert.ok(Number.isNaN(samples[4]!.value));
    assert.equal(metricValue(text, 'x_seconds_bucket', { q: 'say "hi"\\' }), 7);
    assert.equal(metricValue(text, 'x_seconds_bucket', { le: '+Inf' }), 4);
    assert.equal(metricValue(text, 'x_seconds_bucket', { le: 'nope' }), 0);
    assert.equal(metricValue(text, 'absent'), 0);
  });

  const hostile: readonly (readonly [string, string, RegExp])[] = [
    ['no value', 'x', /expected a space and a value/],
    ['two values and a timestamp', 'x 1 2 3', /optional integer timestamp/],
    ['a fractional timestamp', 'x 1 2.5', /optional integer timestamp/],
    ['hex value', 'x 0x10', /bad value/],
    ['empty value after spaces', 'x{a="1"} ', /bad value|expected/],
    ['text value', 'x one', /bad value/],
    ['unclosed label value', 'x{a="1} 2', /not closed/],
    ['unclosed label set', 'x{a="1" 2', /expected , or }/],
    ['repeated label', 'x{a="1",a="2"} 1', /label a repeated/],
    ['label without quotes', 'x{a=1} 1', /needs ="value"/],
    ['label name starting with a digit', 'x{1a="1"} 1', /bad label name/],
    ['unknown escape', 'x{a="\\q"} 1', /bad escape/],
    ['trailing backslash', 'x{a="\\', /not closed|bad escape/],
    ['metric name with a dash', 'x-y 1', /expected a space/],
    ['unknown type', '# TYPE x widget', /unknown type/],
    ['second TYPE', '# TYPE x gauge\n# TYPE x gauge', /a second TYPE/],
    ['TYPE after samples', 'x 1\n# TYPE x gauge', /after its samples/],
    ['second HELP', '# HELP x a\n# HELP x b', /a second HELP/],
    ['bad name in TYPE', '# TYPE 1x gauge', /bad metric name/],
    ['a bucket of a summary', '# TYPE x summary\nx_bucket{le="1"} 1', /not a sample name of summary x/],
    ['bucket without le', '# TYPE x histogram\nx_bucket 1', /without le/],
    ['a sample starting with a space', ' x 1', /must start with a metric name/],
  ];
  for (const [name, text, message] of hostile) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parsePrometheusText(text),
        (error: unknown) => error instanceof PrometheusTextError && message.test(error.message),
      );
    });
  }

  it('refuses input past maxBytes, and long hostile lines in linear time (no backtracking blow-up)', () => {
    assert.throws(() => parsePrometheusText('x 1\n'.repeat(10), { maxBytes: 20 }), /longer than 20 bytes/);
    // Each would take minutes with a backtracking pattern; the test's own timeout bounds them.
    assert.throws(() => parsePrometheusText(`x${' '.repeat(200_000)}y`), /bad value/);
    assert.throws(() => parsePrometheusText(`x{a="${'\\\\'.repeat(100_000)}`), /not closed/);
    assert.throws(() => parsePrometheusText(`x{${'a'.repeat(200_000)}`), /needs ="value"|bad label name/);
  });

  it('keeps labels named __proto__ or constructor as plain labels', () => {
    const { samples } = parsePrometheusText('x{__proto__="p",constructor="c"} 1');
    assert.equal(samples[0]!.labels['__proto__'], 'p');
    assert.equal(samples[0]!.labels['constructor'], 'c');
    assert.equal(({} as Record<string, unknown>)['p'], undefined);
    assert.equal(metricValue('x{__proto__="p"} 2', 'x', JSON.parse('{"__proto__":"p"}') as Record<string, string>), 2);
  });

  it('reads back every label value and count the registry writes (generated)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 20, unit: 'binary' }), fc.integer({ min: 1, max: 1000 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (entries) => {
          const counter = new Counter('t_total', 'generated');
          const expected = new Map<string, number>();
          for (const [value, by] of entries) {
            counter.inc({ v: value }, by);
            expected.set(value, (expected.get(value) ?? 0) + by);
          }
          const { families, samples } = parsePrometheusText(counter.render());
          assert.equal(families.get('t_total')?.type, 'counter');
          assert.equal(samples.length, expected.size);
          for (const sample of samples) assert.equal(sample.value, expected.get(sample.labels['v']!));
        },
      ),
    );
  });

  it("parses the server's whole registry, histograms included", () => {
    const metrics = new Metrics();
    metrics.requestDuration.observe({ route: '/v1/keys/{userId}' }, 0.003);
    const histogram = new Histogram('h_seconds', 'h', [0.1, 1]);
    histogram.observe({}, 0.5);
    const { families } = parsePrometheusText(metrics.render() + histogram.render());
    assert.equal(families.get('padlock_http_request_duration_seconds')?.type, 'histogram');
    assert.equal(metricValue(histogram.render(), 'h_seconds_bucket', { le: '1' }), 1);
    assert.equal(metricValue(histogram.render(), 'h_seconds_bucket', { le: '0.1' }), 0);
  });
});
