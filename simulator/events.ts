// event.from(classes, token, timeout) as ocaml/xapi/xapi_event.ml serves it.
// - Subscriptions: "*" (every class), "<class>" (case-insensitive), "<class>/<ref>" (one object;
//   xapi's own clients follow a task with ["task/<ref>"], xapi-client/tasks.ml, cli_util.ml).
// - Token: "%020d,%020d" (database generation, message generation); "" starts from 0, so every
//   current object comes back as an "add". Anything else: EVENT_FROM_TOKEN_PARSE_FAILURE [token].
// - Each object changed after the token appears once: "add" if created after it, else "mod" (both
//   with a snapshot: the record as get_record shows it), "del" if deleted after it and created
//   before it (no snapshot); an object created and deleted in between does not appear. The event's
//   id is that generation, its class the lowercase class name, its timestamp "0.0".
// - The call returns as soon as there is an event, or with none when `timeout` (seconds) runs out.
//   The new token is the latest generation among the subscribed objects' changes (the old one when
//   nothing changed). valid_ref_counts counts the rows of every class.
// - Batching (xapi_globs.ml event_from_delay, event_from_task_delay; throttle.ml): a call whose
//   subscriptions are all tasks starts at once, any other waits 50 ms first; after a wake-up that
//   found nothing new, the next one waits 6.25, 12.5, 25, then 50 ms before looking.
// - A session deleted while the call waits (logout) makes it fail with SESSION_INVALID.
import { XenApiCode, XenApiError } from '../xenapi/errors';
import type { SimPool } from './pool';
import { CLASSES, type ClassName, type Rec, type RowStat } from './store';
import { XmlRpcInt } from './xmlrpc-server';

type Subscription = { kind: 'all' } | { kind: 'class'; cls: string } | { kind: 'object'; cls: string; ref: string };

const DELAY_BEFORE_MS = 50;
const DELAY_BETWEEN_MS = 50;
const DELAY_INITIAL_MS = DELAY_BETWEEN_MS / 16;

function parseSubscription(x: string): Subscription {
  if (x === '*') return { kind: 'all' };
  const slash = x.indexOf('/');
  if (slash < 0) return { kind: 'class', cls: x.toLowerCase() };
  return { kind: 'object', cls: x.slice(0, slash).toLowerCase(), ref: x.slice(slash + 1) };
}

function tableMatches(subs: Subscription[], cls: ClassName): boolean {
  const t = cls.toLowerCase();
  return subs.some((s) => s.kind === 'all' || s.cls === t);
}

function objectMatches(subs: Subscription[], cls: ClassName, ref: string): boolean {
  const t = cls.toLowerCase();
  return subs.some((s) => s.kind === 'all' || (s.cls === t && (s.kind === 'class' || s.ref === ref)));
}

/** xapi_event.ml Token.of_string: "" or "<generation>,<message generation>". */
function parseToken(token: string): number {
  if (token === '') return 0;
  const parts = token.split(',');
  if (parts.length !== 2 || !parts.every((p) => /^-?\d+$/.test(p))) throw new XenApiError(XenApiCode.EVENT_FROM_TOKEN_PARSE_FAILURE, [token]);
  return Number(parts[0]);
}

const formatToken = (generation: number) => `${String(generation).padStart(20, '0')},${'0'.padStart(20, '0')}`;

interface Entry {
  cls: ClassName;
  ref: string;
  time: number;
}

/** xapi_event.ml collect_events over every subscribed table, for changes after `since`. */
function collect(pool: SimPool, subs: Subscription[], since: number) {
  const s = pool.store;
  const creates: Entry[] = [];
  const mods: Entry[] = [];
  const deletes: Entry[] = [];
  let last = since;
  for (const cls of CLASSES) {
    if (!tableMatches(subs, cls)) continue;
    const t = cls.toLowerCase();
    // A class (or "*") subscription looks at every row; object subscriptions only at their refs.
    const wholeTable = subs.some((x) => x.kind === 'all' || (x.kind === 'class' && x.cls === t));
    const rows: [string, RowStat][] = wholeTable
      ? [...s.rowStats(cls)]
      : subs.flatMap((x) => {
          const st = x.kind === 'object' && x.cls === t ? s.stat(cls, x.ref) : undefined;
          return st && x.kind === 'object' ? [[x.ref, st] as [string, RowStat]] : [];
        });
    for (const [ref, st] of rows) {
      if (st.modified <= since || !objectMatches(subs, cls, ref)) continue;
      last = Math.max(last, st.modified);
      if (st.created > since) creates.push({ cls, ref, time: st.created });
      else mods.push({ cls, ref, time: st.modified });
    }
    for (const t of s.deletedSince(cls, since)) {
      if (!objectMatches(subs, cls, t.ref)) continue;
      last = Math.max(last, t.deleted);
      if (t.created <= since) deletes.push({ cls, ref: t.ref, time: t.deleted });
    }
  }
  return { creates, mods, deletes, last };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function eventFrom(pool: SimPool, session: string, classes: unknown, token: unknown, timeout: unknown): Promise<Rec> {
  const subs = (Array.isArray(classes) ? classes : []).map((c) => parseSubscription(String(c)));
  const from = parseToken(token === undefined || token === null ? '' : String(token));
  const seconds = Number(timeout);
  const deadline = performance.now() + (Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 24 * 3600 * 1000);
  const expired = () => performance.now() >= deadline;
  const taskOnly = subs.every((x) => x.kind !== 'all' && x.cls === 'task');
  const matches = (cls: ClassName, ref: string) => objectMatches(subs, cls, ref);
  const s = pool.store;
  for (;;) {
    if (!taskOnly) await sleep(DELAY_BEFORE_MS);
    let since = from;
    let delay = 0;
    let found = collect(pool, subs, since);
    while (!found.creates.length && !found.mods.length && !found.deletes.length && !expired()) {
      since = found.last;
      await s.waitForChange(matches, deadline - performance.now());
      if (!pool.sessions.has(session)) throw new XenApiError(XenApiCode.SESSION_INVALID, [session]);
      if (delay > 0) await sleep(delay);
      delay = delay === 0 ? DELAY_INITIAL_MS * 2 : Math.min(DELAY_BETWEEN_MS, delay * 2);
      found = collect(pool, subs, since);
    }
    const byTime = (a: Entry, b: Entry) => a.time - b.time;
    const snapshot = (op: 'add' | 'mod', e: Entry) =>
      s.has(e.cls, e.ref) ? [{ id: String(e.time), timestamp: '0.0', class: e.cls.toLowerCase(), operation: op, ref: e.ref, snapshot: pool.view(e.cls, e.ref) }] : [];
    const events = [
      ...found.creates.sort(byTime).flatMap((e) => snapshot('add', e)),
      ...found.mods.sort(byTime).flatMap((e) => snapshot('mod', e)),
      ...found.deletes.sort(byTime).map((e) => ({ id: String(e.time), timestamp: '0.0', class: e.cls.toLowerCase(), operation: 'del', ref: e.ref })),
    ];
    // xapi_event.ml from: an empty batch before the timeout is suppressed and the call goes on.
    if (events.length || expired()) {
      return {
        events,
        valid_ref_counts: Object.fromEntries(CLASSES.map((c) => [c.toLowerCase(), new XmlRpcInt(s.refs(c).length)])),
        token: formatToken(found.last),
      };
    }
  }
}
