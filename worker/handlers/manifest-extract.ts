import { PermanentError } from '#shared/jobs/job-errors.js';
import type { PayloadOf } from '#shared/jobs/kinds.js';
import type { Handler } from '../handler.js';

/**
 * `manifest.extract`: cannot run in this build, because no vision provider is wired in yet; every
 * attempt fails at once (no retries) with code `not_available` rather than inventing a manifest.
 */
export const manifestExtract: Handler<PayloadOf<'manifest.extract'>> = () => {
  throw new PermanentError('manifest.extract cannot run: no vision provider is wired into this build yet', 'not_available');
};
