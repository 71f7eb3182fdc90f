import { randomBytes } from 'node:crypto';

/** A UUIDv7 for the moment `at`, as the application would have made it then (back-dated rows). */
export function uuidv7At(at: Date): string {
  const hex = at.getTime().toString(16).padStart(12, '0') + '7' + randomBytes(10).toString('hex').slice(0, 19);
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  const h = hex.slice(0, 16) + variant + hex.slice(17);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** `days` days before now. */
export const daysAgo = (days: number): Date => new Date(Date.now() - days * 86_400_000);
