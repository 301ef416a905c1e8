#!/usr/bin/env node
// The `lensboard` command: registers tsx in-process and runs the TypeScript entry cli/main.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
