import type { HandlerMap } from '../handler.js';
import { manifestExtract } from './manifest-extract.js';
import { noop, sleepFor } from './system.js';

/** The handler of every registered kind. */
export const handlers = {
  'system.noop': noop,
  'system.sleep': sleepFor,
  'manifest.extract': manifestExtract,
} satisfies HandlerMap;
