// Looks for secrets where they must never be: the raw histories Temporal keeps (read without the
// payload codec, as anyone with access to the namespace would), the log files a stack wrote, and
// any text a test collected (API error bodies). Exported for every test that has secrets of its own
// (the Keystone test passes its tokens).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Stack } from '../../lib/stack';

export interface Secret {
  /** What it is (printed in findings; the value never is). */
  name: string;
  value: string;
}

export interface Finding {
  secret: string;
  where: string;
}

/**
 * The forms a secret may take on its way into text: itself, and for a XenAPI ref its uuid alone
 * (an SM URL carries `session_id=OpaqueRef%3A...`).
 */
function needles(secret: Secret): string[] {
  const forms = [secret.value];
  const ref = /^OpaqueRef:(.+)$/.exec(secret.value);
  if (ref?.[1]) forms.push(ref[1]);
  return forms.filter((f) => f.length >= 8);
}

/** Every secret found in `content` (strings and bytes anywhere in it), named with `where`. */
export function findSecrets(where: string, content: unknown, secrets: Secret[]): Finding[] {
  const found = new Map<string, Finding>();
  const look = (haystack: Buffer | string, path: string) => {
    for (const secret of secrets) {
      if (found.has(secret.name)) continue;
      if (needles(secret).some((n) => haystack.includes(n))) found.set(secret.name, { secret: secret.name, where: path ? `${where} at ${path}` : where });
    }
  };
  const seen = new Set<unknown>();
  const walk = (value: unknown, path: string) => {
    if (value === null || value === undefined) return;
    if (typeof value === 'string') return look(value, path);
    if (value instanceof Uint8Array) return look(Buffer.from(value), path);
    if (typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
  };
  walk(content, '');
  return [...found.values()];
}

/** The log files under a folder (recursively): what a stack's processes wrote. */
export function logFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...logFiles(path));
    else if (name.endsWith('.log')) out.push(path);
  }
  return out;
}

export function scanLogs(dir: string, secrets: Secret[]): Finding[] {
  return logFiles(dir).flatMap((file) => findSecrets(file, readFileSync(file), secrets));
}

/**
 * Every workflow's raw history in one namespace, straight from the server's gRPC API (no codec:
 * payloads stay as the server stores them), with its describe() answer (memo, pending activities'
 * heartbeats). `client` only lists (its codec decodes the memos of the listing).
 */
export async function rawHistories(client: Client): Promise<{ where: string; raw: unknown[] }[]> {
  const namespace = client.options.namespace;
  const service = client.workflowService;
  const out: { where: string; raw: unknown[] }[] = [];
  for await (const run of client.workflow.list()) {
    const execution = { workflowId: run.workflowId, runId: run.runId };
    const pages: unknown[] = [await service.describeWorkflowExecution({ namespace, execution })];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await service.getWorkflowExecutionHistory({ namespace, execution, nextPageToken });
      pages.push(page.history);
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    out.push({ where: `history of ${namespace}/${run.workflowId}/${run.runId}`, raw: pages });
  }
  return out;
}

/** Histories of both of ferry's namespaces and every log of the stack. */
export async function scanStack(stack: Stack, secrets: Secret[]): Promise<{ findings: Finding[]; histories: number; logs: number }> {
  const histories = [...(await rawHistories(stack.client)), ...(await rawHistories(stack.systemClient))];
  const logsDir = join(stack.workDir, 'logs');
  const findings = [...histories.flatMap((h) => findSecrets(h.where, h.raw, secrets)), ...scanLogs(logsDir, secrets)];
  return { findings, histories: histories.length, logs: logFiles(logsDir).length };
}
