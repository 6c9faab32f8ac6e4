// The Temporal web UI tells a migration's story: a real browser (playwright-core driving Debian's
// chromium, installed by `scripts/install.sh --browser`) opens the dev server's UI, filters the
// workflow list by the InstanceUuid search attribute, finds the migration started through ferry's
// API, opens it and finds its activities, and its input decoded by ferry's codec server (payloads
// are encrypted: the raw history holds ciphertext only). Screenshots go to test-artifacts/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noAuthenticator } from '../../api/auth';
import { startApi, type RunningApi } from '../../api/main';
import { temporalCliPath } from '../../lib/paths';
import { ENCRYPTED_ENCODING } from '../../lib/payload-codec';
import { startStack, type Stack } from '../../lib/stack';
import { liveMigrationWorkflowId, type MigrationStatusView } from '../../workflows/definitions';

const CHROMIUM = process.env.FERRY_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '..', '..', 'test-artifacts');

let stack: Stack;
let api: RunningApi;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install.sh --browser (or set FERRY_CHROMIUM)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack({ ui: true });
  api = await startApi({ config: stack.config, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }), auth: noAuthenticator });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await api?.close();
  await stack?.stop();
});

describe('Temporal web UI', () => {
  it('finds a migration by InstanceUuid and shows its activities', async () => {
    const uiUrl = stack.devServer.uiUrl;
    expect(uiUrl).toBeDefined();
    const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'web-ui-demo', memoryMiB: 64, diskMiB: [8], sr: 'shared', dirtyRateMiBps: 2 });
    const started = await fetch(`${api.url}/v1/migrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instanceUuid: vm.uuid }),
    });
    expect(started.status).toBe(202);
    const { id: runId } = (await started.json()) as { id: string };
    const workflowId = liveMigrationWorkflowId(vm.uuid);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const view = (await (await fetch(`${api.url}/v1/migrations/${runId}`)).json()) as MigrationStatusView;
      if (view.status === 'completed') break;
      if (['failed', 'cancelled', 'error'].includes(view.status) || Date.now() > deadline) throw new Error(`migration ended ${view.status}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    try {
      const query = encodeURIComponent(`InstanceUuid="${vm.uuid}"`);
      await page.goto(`${uiUrl}/namespaces/${stack.config.temporal.namespace}/workflows?query=${query}`);
      const row = page.getByRole('link', { name: workflowId });
      await row.first().waitFor({ timeout: 30_000 });
      expect(await row.count()).toBe(1); // the filter leaves exactly this instance's migration
      await page.getByText(`InstanceUuid = "${vm.uuid}"`).first().waitFor({ timeout: 10_000 });
      await page.screenshot({ path: resolve(ARTIFACTS, 'web-ui-list.png') });

      await row.first().click();
      await page.waitForURL(new RegExp(`/workflows/${workflowId}/${runId}`), { timeout: 30_000 });
      for (const activity of ['checkInstanceActive', 'checkCanLiveMigrateDestination', 'migrateSend', 'postLiveMigration']) {
        await page.getByText(activity).first().waitFor({ timeout: 30_000 });
      }
      const body = await page.locator('body').innerText();
      expect(body).toContain('liveMigration');
      // Input and result, decrypted for the UI by the codec server (--ui-codec-endpoint).
      expect(body).toMatch(new RegExp(`"instanceUuid":\\s*"${vm.uuid}"`));
      expect(body).toMatch(/"status":\s*"completed"/);
      expect(body).not.toContain(ENCRYPTED_ENCODING);
      expect(body).toMatch(/migrateSend.*web-ui-demo xen-a → xen-b/); // the activity summary tells the story
      await page.screenshot({ path: resolve(ARTIFACTS, 'web-ui.png'), fullPage: true });

      // The unfiltered list shows what users started (migrations), not housekeeping: the host
      // inventory and the slots entity live in the system namespace.
      await page.goto(`${uiUrl}/namespaces/${stack.config.temporal.namespace}/workflows`);
      await page.getByRole('link', { name: workflowId }).first().waitFor({ timeout: 30_000 });
      const list = await page.locator('body').innerText();
      expect(list).toContain('liveMigration');
      for (const housekeeping of ['migrationSlots', 'hostInventory', 'describeCluster']) expect(list).not.toContain(housekeeping);
    } finally {
      await page.close();
    }
    expect(existsSync(resolve(ARTIFACTS, 'web-ui.png'))).toBe(true);
  });

  it('keeps only ciphertext in the raw history; temporal --codec-endpoint decodes it', async () => {
    const vm = await stack.sims.host('xen-a').admin.createVm({ nameLabel: 'web-ui-cipher', memoryMiB: 16, diskMiB: [4], sr: 'shared' });
    const started = await fetch(`${api.url}/v1/migrations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ instanceUuid: vm.uuid }) });
    expect(started.status).toBe(202);
    const workflowId = liveMigrationWorkflowId(vm.uuid);
    await stack.client.workflow.getHandle(workflowId).result();
    const show = (codec: boolean) =>
      JSON.parse(
        execFileSync(
          temporalCliPath(),
          [
            'workflow', 'show', '--workflow-id', workflowId, '--output', 'json',
            '--address', stack.config.temporal.address, '--namespace', stack.config.temporal.namespace,
            ...(codec ? ['--codec-endpoint', stack.codecEndpoint as string] : []),
          ],
          { encoding: 'utf8' },
        ),
      ) as { events: Record<string, unknown>[] };
    const text = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    /**
     * Every payload of a history (proto JSON: metadata and data in base64) but those the codec never
     * sees: search attributes (the server indexes them) and what sdk-core writes into its own markers
     * (a patch's id, a local activity's type, attempt and times: details 'patch-data' and 'data'; the
     * local activity's result, 'result', is encrypted like any payload).
     */
    const payloadsOf = (history: unknown): { metadata: Record<string, string>; data?: string }[] => {
      const out: { metadata: Record<string, string>; data?: string }[] = [];
      const walk = (v: unknown, key: string, parent = '') => {
        if (!v || typeof v !== 'object' || key === 'searchAttributes' || key === 'header') return;
        if (parent === 'details' && (key === 'patch-data' || key === 'data')) return;
        const p = v as { metadata?: Record<string, string>; data?: string };
        if (p.metadata && typeof p.metadata.encoding === 'string') out.push(p as { metadata: Record<string, string>; data?: string });
        else for (const [k, child] of Object.entries(v)) walk(child, k, key);
      };
      walk(history, '');
      return out;
    };

    const raw = show(false);
    const rawPayloads = payloadsOf(raw);
    expect(rawPayloads.length).toBeGreaterThan(20); // input, results, memos, summaries, heartbeats
    expect([...new Set(rawPayloads.map((p) => text(p.metadata.encoding as string)))]).toEqual([ENCRYPTED_ENCODING]);
    expect(rawPayloads.some((p) => text(p.data ?? '').includes(vm.uuid))).toBe(false);

    const decoded = show(true);
    const input = (decoded.events[0]?.workflowExecutionStartedEventAttributes as { input: { payloads: { metadata: Record<string, string>; data: string }[] } }).input.payloads[0];
    expect(text(input?.metadata.encoding ?? '')).toBe('json/plain');
    expect(JSON.parse(text(input?.data ?? ''))).toMatchObject({ instanceUuid: vm.uuid });
    expect(payloadsOf(decoded).some((p) => text(p.metadata.encoding as string) === ENCRYPTED_ENCODING)).toBe(false);
  });
});
