#!/usr/bin/env node
// The `leasehold` command. Sources are TypeScript run through tsx's loader, so the package works
// straight from a clone with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv.slice(2));
