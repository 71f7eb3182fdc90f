import parsePrometheusTextFormat, { type MetricFamily, type Sample } from 'parse-prometheus-text-format';

/**
 * A /metrics body parsed by a Prometheus text-format parser, with lookups by name and labels.
 * parse-prometheus-text-format 1.1 merges every series of a labelled histogram into one (it keeps
 * `le` and drops the other labels), so series are read from a second parse without TYPE lines, in
 * which `x_bucket`, `x_count` and `x_sum` are plain families that keep their labels.
 */
export class Scrape {
  /** Every family with its TYPE and HELP, as the parser read them. */
  readonly families: Map<string, MetricFamily>;
  readonly #series: Map<string, MetricFamily>;

  constructor(readonly text: string) {
    this.families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    const untyped = text.split('\n').filter((line) => !line.startsWith('# TYPE ')).join('\n');
    // Series of one histogram come as bucket, sum, count lines per label set: merge the runs by name.
    this.#series = new Map();
    for (const f of parsePrometheusTextFormat(untyped)) {
      const seen = this.#series.get(f.name);
      if (seen) seen.metrics.push(...f.metrics);
      else this.#series.set(f.name, f);
    }
  }

  /** Samples of `name` (for a histogram: `name_bucket`, `name_count`, `name_sum`) whose labels include every pair in `labels`. */
  samples(name: string, labels: Record<string, string> = {}): Sample[] {
    const family = this.#series.get(name);
    if (!family) return [];
    return family.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  }

  /** Sum of matching samples: the values of a counter or gauge, the observation counts of a histogram; 0 when none. */
  value(name: string, labels: Record<string, string> = {}): number {
    const series = this.families.get(name)?.type === 'HISTOGRAM' ? `${name}_count` : name;
    return this.samples(series, labels).reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  }
}
