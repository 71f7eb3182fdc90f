import { migrate } from '#shared/db/migrator.js';
import { withDatabase, type CommandContext } from '../context.js';
import { printObject } from '../output.js';

/** `leasehold migrate`: applies pending migrations (the release step in production). */
export async function migrateCommand(ctx: CommandContext): Promise<number> {
  const applied = await withDatabase(ctx, (sql) => migrate(sql), { migrate: 'never' });
  printObject({ applied: applied.length ? applied.join(', ') : 'nothing to apply' }, ctx.json);
  return 0;
}
