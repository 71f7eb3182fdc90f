import { setTimeout as sleep } from 'node:timers/promises';
import type { Handler } from '../handler.js';
import type { PayloadOf } from '#shared/jobs/kinds.js';

/** `system.noop`: succeeds at once with no result. */
export const noop: Handler<PayloadOf<'system.noop'>> = () => null;

/** `system.sleep`: waits `ms`, stopping early (and so failing the attempt) when aborted. */
export const sleepFor: Handler<PayloadOf<'system.sleep'>> = async ({ ms }, ctx) => {
  await sleep(ms, undefined, { signal: ctx.signal });
  return { slept_ms: ms };
};
