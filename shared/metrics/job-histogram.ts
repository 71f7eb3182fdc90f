import type { Metric, Registry } from 'prom-client';

/** One label set's buckets: a count per upper bound (not cumulative) plus +Inf, sum and count. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one value (in the first bucket whose upper bound is ≥ it). */
  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A Prometheus histogram for observations made once per job, exposed through a prom-client
 * registry like any other. prom-client's own histogram validates and hashes the label set on
 * every observe(), even through a `labels()` child; here a child is a plain object found once and
 * kept, and an observation is a bucket search and three increments.
 */
export class JobHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly #labelNames: readonly string[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, { labels: Record<string, string>; series: HistogramSeries }>();

  constructor(opts: { name: string; help: string; labelNames: readonly string[]; buckets: readonly number[]; registers: Registry[] }) {
    this.name = opts.name;
    this.help = opts.help;
    this.#labelNames = opts.labelNames;
    this.#bounds = [...opts.buckets].sort((a, b) => a - b);
    // prom-client's registry reads any object with name, help, type and get(): see Registry.getMetricsAsString.
    for (const registry of opts.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values, in labelNames order; keep it and call observe() on it. */
  labels(...values: string[]): HistogramSeries {
    if (values.length !== this.#labelNames.length) {
      throw new RangeError(`${this.name} takes ${this.#labelNames.length} label values, got ${values.length}`);
    }
    const key = values.join('\0');
    let entry = this.#series.get(key);
    if (!entry) {
      const labels = Object.fromEntries(this.#labelNames.map((n, i) => [n, values[i]!]));
      entry = { labels, series: new HistogramSeries(this.#bounds) };
      this.#series.set(key, entry);
    }
    return entry.series;
  }

  /** Forgets the series of these label values (in labelNames order), if there is one. */
  remove(...values: string[]): void {
    this.#series.delete(values.join('\0'));
  }

  /** Forgets every observation. */
  reset(): void {
    this.#series.clear();
  }

  /** The samples in prom-client's shape: cumulative `_bucket` per `le`, then `_sum` and `_count`, per label set. */
  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const { labels, series } of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
