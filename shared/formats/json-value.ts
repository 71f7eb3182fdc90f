// The one value type every format converts: what JSON.parse returns.

/** Any JSON value: a manifest, or a part of one. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object (not an array, not null). */
export type JsonObject = { [key: string]: JsonValue };

/** True for a JSON object: not an array and not null. */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Sets `key` as an own, enumerable property, as JSON.parse does: a plain assignment of
 * `__proto__` would replace the object's prototype instead of adding a key.
 */
export function setOwnKey(target: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The manifest as its JSON text means it, so every format starts from the same value:
 * `-0` becomes `0`, `toJSON` is applied and undefined properties vanish (JSON.stringify's rules).
 */
export function toJsonValue(manifest: unknown): JsonValue {
  const text = JSON.stringify(manifest);
  if (text === undefined) throw new TypeError('the manifest is not representable as JSON');
  return JSON.parse(text) as JsonValue;
}
