import { html, LitElement, nothing, svg, type TemplateResult } from 'lit';
import { errorText, text } from './api.js';
import { parsePrometheus, quantile, snapshot, type Snapshot } from './metrics.js';

/* Health: live charts from /metrics, scraped every few seconds; figures are rates between scrapes. */

const SCRAPE_MS = 1000;
/** The fewest slots a chart spreads its points over, so a young chart does not fill the width with two. */
const MIN_SLOTS = 10;
const KEEP = 60;

interface Point {
  readonly at: number;
  readonly rate: number;
  readonly p50: number | undefined;
  readonly p95: number | undefined;
  readonly p99: number | undefined;
  readonly shedRate: number;
  readonly errorRate: number;
  readonly hitRates: Readonly<Record<string, number | undefined>>;
}

function chart(
  label: string,
  id: string,
  series: readonly { name: string; values: readonly (number | undefined)[] }[],
  unit: string,
): TemplateResult {
  const width = 320;
  const height = 90;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined));
  const max = Math.max(1e-9, ...all);
  const latest = series.map((s) => {
    const v = [...s.values].reverse().find((x) => x !== undefined);
    return `${s.name} ${v === undefined ? '-' : v.toPrecision(3)}${unit}`;
  });
  return html`<figure class="chart" id=${id}>
    <figcaption>${label}: <span class="latest">${latest.join(', ')}</span></figcaption>
    <svg viewBox="0 0 ${width} ${height}" role="img" aria-label=${`${label}: ${latest.join(', ')}`}>
      ${series.map((s, i) => {
        const slots = Math.max(MIN_SLOTS, s.values.length);
        const step = width / (slots - 1);
        const offset = slots - s.values.length;
        const points = s.values
          .map((v, j) =>
            v === undefined
              ? undefined
              : `${((offset + j) * step).toFixed(1)},${(height - (v / max) * (height - 4) - 2).toFixed(1)}`,
          )
          .filter((p) => p !== undefined)
          .join(' ');
        const last = points.split(' ').at(-1)?.split(',');
        return svg`<polyline class=${`series series-${i}`} fill="none" points=${points}></polyline>
          ${last === undefined || last.length !== 2 ? nothing : svg`<circle class=${`series series-${i}`} r="2.5" cx=${last[0]} cy=${last[1]}></circle>`}`;
      })}
    </svg>
  </figure>`;
}

class HealthScreen extends LitElement {
  static override properties = { points: { state: true }, error: { state: true }, canary: { state: true } };

  points: readonly Point[] = [];
  error = '';
  canary: Snapshot['canary'];
  #previous: Snapshot | undefined;
  #timer: number | undefined;

  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.#scrape();
    this.#timer = window.setInterval(() => void this.#scrape(), SCRAPE_MS);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.clearInterval(this.#timer);
  }

  async #scrape(): Promise<void> {
    try {
      const now = snapshot(parsePrometheus(await text('/metrics')), Date.now());
      this.canary = now.canary;
      const before = this.#previous;
      this.#previous = now;
      this.error = '';
      if (before === undefined) return;
      const seconds = Math.max(0.001, (now.at - before.at) / 1000);
      const hitRates: Record<string, number | undefined> = {};
      for (const [layer, c] of Object.entries(now.cache)) {
        const was = before.cache[layer] ?? { hits: 0, misses: 0 };
        const hits = c.hits - was.hits;
        const lookups = hits + c.misses - was.misses;
        hitRates[layer] = lookups > 0 ? (100 * hits) / lookups : undefined;
      }
      const point: Point = {
        at: now.at,
        rate: (now.requests - before.requests) / seconds,
        p50: ms(quantile(before, now, 0.5)),
        p95: ms(quantile(before, now, 0.95)),
        p99: ms(quantile(before, now, 0.99)),
        shedRate: (now.shed - before.shed) / seconds,
        errorRate: (now.errors - before.errors) / seconds,
        hitRates,
      };
      this.points = [...this.points, point].slice(-KEEP);
    } catch (error) {
      this.error = errorText(error);
    }
  }

  protected override render(): TemplateResult {
    const p = this.points;
    const layers = [...new Set(p.flatMap((x) => Object.keys(x.hitRates)))].sort();
    return html`<section aria-labelledby="health-title">
      <h2 id="health-title">Health</h2>
      <p class="help">From this server's /metrics every ${SCRAPE_MS / 1000} s; the console's own requests count too.</p>
      ${this.error === '' ? nothing : html`<p role="alert" class="error">${this.error}</p>`}
      <div class="charts">
        ${chart('Requests per second', 'chart-rate', [{ name: 'all', values: p.map((x) => x.rate) }], '/s')}
        ${chart(
          'Latency',
          'chart-latency',
          [
            { name: 'p50', values: p.map((x) => x.p50) },
            { name: 'p95', values: p.map((x) => x.p95) },
            { name: 'p99', values: p.map((x) => x.p99) },
          ],
          ' ms',
        )}
        ${chart(
          'Cache hit rate',
          'chart-cache',
          layers.length === 0
            ? [{ name: 'none', values: [] }]
            : layers.map((l) => ({ name: l, values: p.map((x) => x.hitRates[l]) })),
          ' %',
        )}
        ${chart(
          'Shed and errors',
          'chart-shed',
          [
            { name: 'shed', values: p.map((x) => x.shedRate) },
            { name: '5xx', values: p.map((x) => x.errorRate) },
          ],
          '/s',
        )}
      </div>
      <h3>Deletion canary</h3>
      ${
        this.canary === undefined
          ? html`<p id="canary">No canary configured.</p>`
          : html`<dl id="canary">
              ${Object.entries(this.canary).map(
                ([name, value]) =>
                  html`<dt>${name}</dt>
                    <dd>${value}</dd>`,
              )}
            </dl>`
      }
    </section>`;
  }
}

function ms(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : seconds * 1000;
}

customElements.define('health-screen', HealthScreen);
