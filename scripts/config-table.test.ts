import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { configSchema, loadConfig } from '#shared/config.js';
import { configDocs, configTable, docComments, TABLE_END, TABLE_START } from './config-table.js';

const read = (f: string) => readFileSync(new URL(`../${f}`, import.meta.url), 'utf8');

describe('configuration documentation', () => {
  test('README.md holds the table generated from shared/config.ts (run `npm run docs:config` after adding a key)', () => {
    const readme = read('README.md');
    const start = readme.indexOf(TABLE_START);
    const end = readme.indexOf(TABLE_END);
    expect(start, 'README.md has the config-table markers').toBeGreaterThanOrEqual(0);
    expect(readme.slice(start + TABLE_START.length, end).trim()).toBe(configTable());
  });

  test('every key in the schema has a doc comment and a line in .env.example', () => {
    const docs = configDocs();
    expect(docs.map((d) => d.key)).toEqual(Object.keys(configSchema.shape));
    for (const d of docs) expect(d.doc, `${d.key} has no doc comment in shared/config.ts`).toBeTruthy();
    const example = read('.env.example');
    for (const d of docs) expect(example, `${d.key} is missing from .env.example`).toMatch(new RegExp(`^${d.key}=`, 'm'));
  });

  test(".env.example's values are the defaults: setting every one of them changes nothing", () => {
    const given = Object.fromEntries(
      [...read('.env.example').matchAll(/^([A-Z0-9_]+)=(.*)$/gm)].filter(([, , v]) => v !== '').map(([, k, v]) => [k!, v!]),
    );
    expect(Object.keys(given).length).toBeGreaterThan(20);
    const defaults = loadConfig({}) as Record<string, unknown>;
    const example = loadConfig(given) as Record<string, unknown>;
    for (const key of Object.keys(given)) expect(example[key], key).toEqual(defaults[key]);
  });

  test('each key takes the comment right above it, and a key without one takes none', () => {
    const source = 'const schema = z.object({\n  /** First. */\n  A_KEY: x,\n  B_KEY: y,\n  /** Third,\n   * two lines. */\n  C_KEY: z,\n});\n/** After. */\nD_KEY: 1';
    expect(Object.fromEntries(docComments(source))).toEqual({ A_KEY: 'First.', C_KEY: 'Third, two lines.' });
  });
});
