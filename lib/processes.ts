// Starts ferry's own TypeScript entry points as child processes (through tsx, no build step).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { projectRoot } from './paths';

export interface SpawnTsOptions {
  env?: NodeJS.ProcessEnv;
  /** Appends the child's stdout and stderr to this file; omitted: inherit ours. */
  logFile?: string;
  /**
   * The child stops when this process dies: it gets a pipe on stdin and FERRY_EXIT_WITH_PARENT=1,
   * and ferry's entry points shut down when that pipe closes (see exitWithParent()).
   */
  exitWithParent?: boolean;
}

/** In a child started with exitWithParent: shut down gracefully (SIGTERM) once the parent is gone. */
export function exitWithParent(): void {
  if (process.env.FERRY_EXIT_WITH_PARENT !== '1') return;
  const stop = () => process.kill(process.pid, 'SIGTERM');
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

export function spawnTs(script: string, args: string[], options: SpawnTsOptions = {}): ChildProcess {
  let stdio: 'inherit' | number = 'inherit';
  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    stdio = openSync(options.logFile, 'a');
  }
  return spawn(process.execPath, ['--import', 'tsx', resolve(projectRoot, script), ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...options.env, ...(options.exitWithParent ? { FERRY_EXIT_WITH_PARENT: '1' } : {}) },
    stdio: [options.exitWithParent ? 'pipe' : 'ignore', stdio, stdio],
  });
}
