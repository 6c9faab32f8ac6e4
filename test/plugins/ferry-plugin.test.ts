// Runs the Python unit tests of ferry's dom0 plugin (plugins/xapi.d/ferry) from the vitest suite,
// so `npm test` covers the file operators install on every host, not only the TypeScript caller.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');
const pluginPath = join(root, 'plugins/xapi.d/ferry');
// The project's own interpreter when installed (scripts/install.sh), else the system's.
const venvPython = join(root, '.tools/venv/bin/python');
const python = existsSync(venvPython) ? venvPython : 'python3';

describe('dom0 plugin', () => {
  it('is an executable python3 script, as xapi runs it from /etc/xapi.d/plugins', () => {
    expect(() => accessSync(pluginPath, constants.X_OK)).not.toThrow();
    expect(readFileSync(pluginPath, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env python3');
  });

  it('passes its unittest suite against the stand-in xl and XenAPIPlugin', () => {
    const run = spawnSync(python, ['-m', 'unittest', 'discover', '-s', 'plugins/tests', '-v'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    // The whole unittest report on failure says which case broke and why.
    expect(run.error, output).toBeUndefined();
    expect(run.status, output).toBe(0);
    expect(output).toMatch(/\nOK\b/);
  });
});
