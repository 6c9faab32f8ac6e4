#!/usr/bin/env -S node --import tsx
// The `ferry` executable: `npx tsx cli/ferry.ts <command>` or `npm run ferry -- <command>`.
import { run } from './main';

run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ferry: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
