// Where the project's installed tools live (see scripts/install.sh).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const projectRoot = resolve(__dirname, '..');
export const toolsBin = resolve(projectRoot, '.tools', 'venv', 'bin');

export function temporalCliPath(): string {
  const path = process.env.FERRY_TEMPORAL_CLI ?? resolve(toolsBin, 'temporal');
  if (!existsSync(path)) {
    throw new Error(`Temporal CLI not found at ${path}: run "bash scripts/install.sh" first`);
  }
  return path;
}

export function pythonPath(): string {
  return resolve(toolsBin, 'python');
}
