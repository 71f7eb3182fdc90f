import { migrate } from '#shared/db/migrator.js';
import { withDatabase, type CommandContext } from '../context.js';
import { printObject } from '../output.js';

/** `leasehold migrate`: applies pending migrations (the release step in production). */
export async function migrateCommand(ctx: CommandContext): Promise<number> {
  const applied = await withDatabase(ctx, (sql) => migrate(sql), { migrate: 'never' });
  // JSON readers get the list itself; people get a sentence when it is empty.
  printObject({ applied: ctx.json || applied.length ? applied : 'nothing to apply' }, ctx.json);
  return 0;
}
