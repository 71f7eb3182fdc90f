import { parseArgs, type ParseArgsConfig } from 'node:util';
import { commandContext, UsageError } from './context.js';
import { dlqCommand } from './commands/dlq.js';
import { doctorCommand } from './commands/doctor.js';
import { jobsCommand } from './commands/jobs.js';
import { keysCommand, tenantsCommand } from './commands/keys.js';
import { migrateCommand } from './commands/migrate.js';
import { queuesCommand } from './commands/queues.js';
import { schedulesCommand } from './commands/schedules.js';
import { statsCommand } from './commands/stats.js';

const HELP = `leasehold — a Postgres-native job system for AI image pipelines

usage: leasehold <command> [options]

  start                     embedded or DATABASE_URL PostgreSQL, migrations, API and a worker
  api                       the HTTP API only
  worker                    a worker only
  migrate                   apply pending migrations
  jobs ls [--status s] [--queue q] [--kind k] [--limit n]
  jobs show|retry|cancel <job-id> | jobs extend <job-id> --by <seconds>
  doctor <job-id>           why a job is not running (or how it ended), its history and errors
  dlq ls [--all] [--limit n] | dlq requeue <dead-letter-id>
  dlq requeue --all | [--kind k] [--queue q] [--tenant slug] [--since time] [--error regex] [--limit n]
  queues ls | queues pause|resume <queue>
  schedules ls | schedules rm|pause|resume <name>
  schedules add <name> --cron expr --kind k [--payload json] [--queue q] [--priority n] [--max-attempts n] [--tz zone] [--tenant slug]
  keys create [--tenant slug] [--name n] [--scopes jobs:read,jobs:write] | keys ls | keys revoke <id|prefix>
                            tenants get jobs:read / jobs:write (the default); admin is for operators:
                            it acts on every tenant (/v1/admin/*, the dashboard, /metrics)
  tenants create <slug> [--name n] | tenants ls
  tenants budget <tenant> [--grant credits|--grant-usd usd] [--per-job-usd|--daily-usd|--monthly-usd usd|none]
                 [--kind-daily-usd kind=usd,…|none] [--enforce-credits true|false]
  stats                     per queue and kind: depth, oldest wait, last minute and hour; live workers

every command takes --json; configuration comes from the environment (see .env.example)
`;

const SERVERS = new Set(['start', 'api', 'worker']);

/** Every option any command takes; one a command does not read is ignored by it. */
const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  all: { type: 'boolean' },
  status: { type: 'string' },
  queue: { type: 'string' },
  kind: { type: 'string' },
  limit: { type: 'string' },
  tenant: { type: 'string' },
  name: { type: 'string' },
  scopes: { type: 'string' },
  grant: { type: 'string' },
  'grant-usd': { type: 'string' },
  note: { type: 'string' },
  'per-job-usd': { type: 'string' },
  'daily-usd': { type: 'string' },
  'monthly-usd': { type: 'string' },
  'kind-daily-usd': { type: 'string' },
  'enforce-credits': { type: 'string' },
  since: { type: 'string' },
  error: { type: 'string' },
  by: { type: 'string' },
  cron: { type: 'string' },
  tz: { type: 'string' },
  payload: { type: 'string' },
  priority: { type: 'string' },
  'max-attempts': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Runs one CLI invocation; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Not strict, so that `--priority -5` reads as a value; unknown options are refused below instead.
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    tokens: true,
    options: OPTIONS,
  });
  const [command = 'help', ...rest] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const unknown = tokens.find((t) => t.kind === 'option' && !Object.hasOwn(OPTIONS, t.name));
  if (unknown?.kind === 'option') {
    const message = `unknown option ${unknown.rawName}`;
    if (values.json === true) process.stdout.write(`${JSON.stringify({ error: message, usage: true })}\n`);
    process.stderr.write(`leasehold: ${message}; see leasehold --help\n`);
    return 64;
  }
  // Servers log to stdout like any service; every other command prints its result there.
  const ctx = commandContext(values.json === true, process.env, SERVERS.has(command) ? 1 : 2);
  try {
    switch (command) {
      // Loaded only by the commands that serve: a one-shot command does not pay for (or depend on) the HTTP app.
      case 'start':
        return await (await import('./commands/serve.js')).serve(ctx, { api: true, worker: true, migrate: true });
      case 'api':
        return await (await import('./commands/serve.js')).serve(ctx, { api: true, worker: false, migrate: false });
      case 'worker':
        return await (await import('./commands/serve.js')).serve(ctx, { api: false, worker: true, migrate: false });
      case 'migrate':
        return await migrateCommand(ctx);
      case 'jobs':
        return await jobsCommand(ctx, rest, values);
      case 'dlq':
        return await dlqCommand(ctx, rest, values);
      case 'keys':
        return await keysCommand(ctx, rest, values);
      case 'tenants':
        return await tenantsCommand(ctx, rest, values);
      case 'stats':
        return await statsCommand(ctx);
      case 'doctor':
        return await doctorCommand(ctx, rest);
      case 'queues':
        return await queuesCommand(ctx, rest);
      case 'schedules':
        return await schedulesCommand(ctx, rest, values);
      default:
        if (ctx.json) process.stdout.write(`${JSON.stringify({ error: `unknown command "${command}"`, usage: true })}\n`);
        process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
        return 64;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      if (ctx.json) process.stdout.write(`${JSON.stringify({ error: err.message, usage: true })}\n`);
      process.stderr.write(err.isUsageLine ? `${err.message}\n` : `leasehold ${command}: ${err.message}\n`);
      return 64; // EX_USAGE
    }
    const message = err instanceof Error ? err.message : String(err);
    if (ctx.json) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
    process.stderr.write(`leasehold ${command}: ${message}\n`);
    return 1;
  }
}
