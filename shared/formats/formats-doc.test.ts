// docs/formats.md shows one manifest in every format; this keeps those examples true.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { MANIFEST_FORMATS, renderManifest } from './render-manifest.js';

const DOC = readFileSync(new URL('../../docs/formats.md', import.meta.url), 'utf8');

/** The fenced blocks of the document tagged `example-…`, by tag. */
const blocks = new Map([...DOC.matchAll(/```\w+ (example-[\w-]+)\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!]));

describe('docs/formats.md', () => {
  const manifest = JSON.parse(blocks.get('example-manifest') ?? 'null') as unknown;
  const schema = JSON.parse(blocks.get('example-schema') ?? 'null') as unknown;

  test.each(MANIFEST_FORMATS)('shows exactly what %s renders', (format) => {
    const body = renderManifest(manifest, format, schema).body;
    expect(blocks.get(`example-${format}`)).toBe(body.replace(/\r\n/g, '\n'));
  });
});
