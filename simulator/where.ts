// Evaluates xapi's get_all_records_where expressions, e.g.
//   field "power_state" = "Running" and not field "is_a_template" = "true"
// Grammar: expr := term (("and" | "or") term)* ; term := "not" term | "(" expr ")" | "true" | "false"
//        | "field" STRING ("=" | "<>" | "!=") STRING. Values compare as their string form, like xapi.
import { XenApiError } from '../xenapi/errors';

type Token = { kind: 'word' | 'string' | 'op'; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i] ?? '';
    if (/\s/.test(c)) i++;
    else if (c === '"') {
      let j = i + 1;
      let text = '';
      while (j < expr.length && expr[j] !== '"') {
        if (expr[j] === '\\' && j + 1 < expr.length) j++;
        text += expr[j];
        j++;
      }
      if (j >= expr.length) throw new XenApiError('INVALID_VALUE', [expr]);
      tokens.push({ kind: 'string', text });
      i = j + 1;
    } else if (c === '(' || c === ')' || c === '=') {
      tokens.push({ kind: 'op', text: c });
      i++;
    } else if (expr.startsWith('<>', i) || expr.startsWith('!=', i)) {
      tokens.push({ kind: 'op', text: '<>' });
      i += 2;
    } else {
      const m = /^[A-Za-z_]+/.exec(expr.slice(i));
      if (!m) throw new XenApiError('INVALID_VALUE', [expr]);
      tokens.push({ kind: 'word', text: m[0].toLowerCase() });
      i += m[0].length;
    }
  }
  return tokens;
}

function asText(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export type Predicate = (record: Record<string, unknown>) => boolean;

export function compileWhere(expr: string): Predicate {
  const tokens = tokenize(expr);
  let pos = 0;
  const fail = (): never => {
    throw new XenApiError('INVALID_VALUE', [expr]);
  };
  const peek = () => tokens[pos];
  const next = () => tokens[pos++] ?? fail();

  const term = (): Predicate => {
    const t = next();
    if (t.kind === 'word' && t.text === 'not') {
      const inner = term();
      return (r) => !inner(r);
    }
    if (t.kind === 'op' && t.text === '(') {
      const inner = parseExpr();
      const close = next();
      if (close.text !== ')') fail();
      return inner;
    }
    if (t.kind === 'word' && t.text === 'true') return () => true;
    if (t.kind === 'word' && t.text === 'false') return () => false;
    if (t.kind === 'word' && t.text === 'field') {
      const name = next();
      const op = next();
      const value = next();
      if (name.kind !== 'string' || value.kind !== 'string' || op.kind !== 'op' || (op.text !== '=' && op.text !== '<>')) fail();
      const eq = (r: Record<string, unknown>) => asText(r[name.text]) === value.text;
      return op.text === '=' ? eq : (r) => !eq(r);
    }
    return fail();
  };

  const parseExpr = (): Predicate => {
    let left = term();
    for (let t = peek(); t && t.kind === 'word' && (t.text === 'and' || t.text === 'or'); t = peek()) {
      pos++;
      const right = term();
      const l = left;
      left = t.text === 'and' ? (r) => l(r) && right(r) : (r) => l(r) || right(r);
    }
    return left;
  };

  const predicate = parseExpr();
  if (pos !== tokens.length) fail();
  return predicate;
}
