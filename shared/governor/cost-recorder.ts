import type { Sql } from '../db/connect.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { PREPARED, RECORD_COST } from '../jobs/queue-sql.js';
import { callCost, type CallCost, type CallTokens } from './cost.js';
import type { PriceTable } from './pricing.js';

/** The job a call was made for. */
export interface CallOwner {
  id: string;
  tenantId: string;
  kind: string;
  attempt: number;
}

/**
 * Writes a cost_events row (and the day's roll-up) for every billable call, as soon as the call
 * returns: the money is spent whatever the job does next. A write that fails is logged, never
 * thrown: failing the job would only buy a second call.
 */
export class CostRecorder {
  constructor(
    private readonly sql: Sql,
    private readonly prices: PriceTable,
    private readonly log?: Logger,
    private readonly metrics?: Metrics,
  ) {}

  /** Prices `tokens` as `model` and records them; returns the cost. */
  async record(owner: CallOwner, provider: string, model: string, sort: 'gpt-4o' | 'gpt-image-1', tokens: CallTokens): Promise<CallCost> {
    const cost = callCost(this.prices, model, sort, tokens);
    const p = cost.prices;
    // Counted whether or not the row is written: the money is spent either way.
    this.metrics?.governorSpendUsd.labels(owner.kind).inc(cost.micros / 1_000_000);
    try {
      await this.sql.unsafe(
        RECORD_COST,
        [owner.id, owner.tenantId, owner.kind, owner.attempt, provider, model, cost.pricedAs, cost.pricesDate,
          cost.text, cost.cached, cost.image, cost.output, p.input, p.cachedInput, p.imageInput, p.output, cost.micros],
        PREPARED,
      );
    } catch (err) {
      this.log?.error({ err, job_id: owner.id, cost_micros: cost.micros }, 'could not record the cost of a model call');
    }
    return cost;
  }
}
