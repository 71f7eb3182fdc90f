// postgres.js sends a timestamptz parameter as `new Date(value).toISOString()`. PostgreSQL refuses
// year 0000 (SQLSTATE 22008, datetime_field_overflow) and reads the six-digit year toISOString
// writes past 9999 (`+010000-01-01T…`) as a bad zone (22009), so only UTC years 0001–9999 get through.
const MIN_MS = Date.parse('0001-01-01T00:00:00.000Z');
const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');
// PostgreSQL refuses a UTC offset past ±15:59:59 (22009, invalid_time_zone_displacement_value), even
// though RFC 3339 allows up to ±23:59; no time zone in use is further than +14:00.
const MAX_OFFSET_HOURS = 15;

/**
 * Why an RFC 3339 date-time (zod's `z.iso.datetime({ offset: true })` form) cannot be a timestamptz
 * parameter, or undefined when it can: PostgreSQL must take it as written, and at its UTC moment.
 */
export function timestamptzRefusal(text: string): string | undefined {
  const offset = /([+-])(\d{2}):(\d{2})$/.exec(text);
  if (offset && Number(offset[2]) > MAX_OFFSET_HOURS) return `the UTC offset must be within ±${MAX_OFFSET_HOURS}:59`;
  if (text.startsWith('0000-')) return 'there is no year 0000: years start at 0001';
  return instantRefusal(Date.parse(text));
}

/** Why a moment (milliseconds since the epoch) cannot be a timestamptz parameter, or undefined when it can. */
export function instantRefusal(ms: number): string | undefined {
  if (Number.isNaN(ms)) return 'not a date or time';
  if (ms < MIN_MS || ms > MAX_MS) return 'must fall within the years 0001 to 9999 (UTC)';
  return undefined;
}
