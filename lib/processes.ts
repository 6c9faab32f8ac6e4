// Starts ferry's own TypeScript entry points as child processes (through tsx, no build step).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { projectRoot } from './paths';

export interface SpawnTsOptions {
  env?: NodeJS.ProcessEnv;
  /** Appends the child's stdout and stderr to this file; omitted: inherit ours. */
  logFile?: string;
}

export function spawnTs(script: string, args: string[], options: SpawnTsOptions = {}): ChildProcess {
  let stdio: 'inherit' | number = 'inherit';
  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    stdio = openSync(options.logFile, 'a');
  }
  return spawn(process.execPath, ['--import', 'tsx', resolve(projectRoot, script), ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', stdio, stdio],
  });
}
