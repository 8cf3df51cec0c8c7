import { UsageError } from '../core/errors.js';

/** The SQL dialects a sync's query is written in: PostgreSQL (and Redshift), or T-SQL (SQL Server). */
export type SqlDialect = 'postgres' | 'mssql';

/** The one placeholder a sync's query may hold. */
export const LAST_SYNC_TIME = 'last_sync_time';

/** A customer's query checked and rewritten: the placeholder became a bound parameter. */
export interface QueryTemplate {
  readonly dialect: SqlDialect;
  /** The query as the customer wrote it. */
  readonly source: string;
  /** The SQL sent to the server: `{{last_sync_time}}` replaced by `$1` (PostgreSQL) or `@p1` (T-SQL), a final `;` dropped. */
  readonly sql: string;
  /** How many times the placeholder occurs (every occurrence is the same parameter). */
  readonly placeholders: number;
}

const PARAMETER: Record<SqlDialect, string> = { postgres: '$1', mssql: '@p1' };

const PLACEHOLDER_HINT = `write {{${LAST_SYNC_TIME}}} where a value goes, outside quotes and comments, e.g. WHERE updated_at >= {{${LAST_SYNC_TIME}}}; Wharf sends it as a bound parameter`;

/**
 * T-SQL keywords that change data or the session, or start another statement; none can appear in a query
 * that only reads (they are reserved words: a column of that name must be quoted).
 */
const TSQL_REFUSED = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'drop',
  'create',
  'alter',
  'truncate',
  'exec',
  'execute',
  'into',
  'grant',
  'revoke',
  'deny',
  'begin',
  'commit',
  'rollback',
  'save',
  'declare',
  'set',
  'use',
  'backup',
  'restore',
  'dbcc',
  'kill',
  'shutdown',
  'waitfor',
  'bulk',
  'writetext',
  'updatetext',
  'reconfigure',
  'checkpoint',
  'open',
  'close',
  'deallocate',
  'print',
  'raiserror',
  'throw',
  'return',
  'goto',
  'if',
  'while',
]);

/** What may follow `)` or a set operator before a `SELECT` that continues the same statement. */
const TSQL_SET_OPERATORS = new Set(['union', 'all', 'except', 'intersect']);

/** Keywords a query may start with. */
const FIRST_KEYWORDS: Record<SqlDialect, ReadonlySet<string>> = {
  postgres: new Set(['select', 'with', 'values', 'table']),
  mssql: new Set(['select', 'with']),
};

/**
 * Checks a sync's query and turns `{{last_sync_time}}` (spaces inside the braces allowed) into the
 * dialect's first bound parameter. Refuses, with one `UsageError` naming the line and column, a
 * placeholder inside a string literal (`'…'`, `E'…'`, `$tag$…$tag$`, `N'…'`), a quoted identifier
 * (`"…"`, `[…]`) or a comment; an unknown or unclosed `{{…}}`; a parameter written by hand (`$1`,
 * `@name`); a second statement; and a query that does not start with SELECT / WITH (VALUES / TABLE too on
 * PostgreSQL). On T-SQL, where statements need no `;` between them, a keyword that writes or starts
 * another statement (`INSERT`, `EXEC`, `INTO`, …) is refused too.
 *
 * @example
 * parseQueryTemplate('select id as userId from users where updated >= {{ last_sync_time }}', 'postgres').sql
 * // 'select id as userId from users where updated >= $1'
 */
export function parseQueryTemplate(source: string, dialect: SqlDialect): QueryTemplate {
  return new TemplateScanner(source, dialect).scan();
}

type Token =
  | { readonly kind: 'word'; readonly lower: string; readonly at: number }
  | { readonly kind: 'open' | 'close' | 'other'; readonly at: number };

class TemplateScanner {
  readonly #src: string;
  readonly #dialect: SqlDialect;
  #out = '';
  #copied = 0;
  #placeholders = 0;
  /** Significant tokens at parenthesis depth 0 (T-SQL statement checks). */
  #previous: Token | undefined;
  #depth = 0;
  #first: Token | undefined;
  /** T-SQL: the main SELECT of a statement that started with WITH has been seen. */
  #mainSelect = false;
  /** Where the final `;` is, when there is one. */
  #end: number | undefined;

  constructor(source: string, dialect: SqlDialect) {
    this.#src = source;
    this.#dialect = dialect;
  }

  scan(): QueryTemplate {
    const s = this.#src;
    let i = 0;
    while (i < s.length) {
      const c = s[i]!;
      const next = s[i + 1];
      if (
        this.#end !== undefined &&
        !isSpace(c) &&
        !(c === '-' && next === '-') &&
        !(c === '/' && next === '*')
      ) {
        throw this.#refuse(
          i,
          'holds a second statement after the ";"',
          'a sync runs one SELECT: remove the rest',
        );
      }
      if (isSpace(c)) i++;
      else if (c === '-' && next === '-') i = this.#lineComment(i);
      else if (c === '/' && next === '*') i = this.#blockComment(i);
      else if (c === "'") i = this.#quoted(i, i, "'", 'a string literal', false);
      else if (c === '"') i = this.#quoted(i, i, '"', 'a quoted identifier', false);
      else if (c === '[' && this.#dialect === 'mssql')
        i = this.#quoted(i, i, ']', 'a quoted identifier', false);
      else if (c === '{' && next === '{') i = this.#placeholder(i);
      else if (c === ';') {
        this.#end = i;
        i++;
      } else if (c === '$' && this.#dialect === 'postgres') i = this.#dollar(i);
      else if (c === '@' && this.#dialect === 'mssql') i = this.#variable(i);
      else if (isWordStart(c, this.#dialect)) i = this.#word(i);
      else if (isDigit(c)) i = this.#number(i);
      else {
        this.#token(
          c === '('
            ? { kind: 'open', at: i }
            : c === ')'
              ? { kind: 'close', at: i }
              : { kind: 'other', at: i },
        );
        i++;
      }
    }
    if (this.#first === undefined) {
      throw new UsageError('the sync query is empty', 'write one SELECT statement');
    }
    const end = this.#end ?? s.length;
    const sql = (this.#out + s.slice(this.#copied, end)).replace(/\s+$/, '');
    return { dialect: this.#dialect, source: s, sql, placeholders: this.#placeholders };
  }

  #token(token: Token): void {
    if (this.#first === undefined) {
      const ok =
        token.kind === 'open' || (token.kind === 'word' && FIRST_KEYWORDS[this.#dialect].has(token.lower));
      if (!ok) {
        throw this.#refuse(
          token.at,
          'does not start with SELECT',
          `a sync's query only reads: start it with ${this.#dialect === 'postgres' ? 'SELECT, WITH, VALUES or TABLE' : 'SELECT or WITH'}`,
        );
      }
      this.#first = token;
    }
    if (this.#dialect === 'mssql') this.#tsqlToken(token);
    if (token.kind === 'open') this.#depth++;
    else if (token.kind === 'close') this.#depth = Math.max(0, this.#depth - 1);
    if (this.#depth === 0 || token.kind === 'open') this.#previous = token;
  }

  /** T-SQL needs no `;` between statements: a top-level SELECT that does not continue the statement starts another. */
  #tsqlToken(token: Token): void {
    if (token.kind !== 'word') return;
    if (TSQL_REFUSED.has(token.lower)) {
      throw this.#refuse(
        token.at,
        `uses ${token.lower.toUpperCase()}, which writes or starts another statement`,
        'a sync runs one SELECT that only reads; quote a column of that name as [name]',
      );
    }
    if (token.lower !== 'select' || this.#depth !== 0 || token === this.#first) {
      if (token.lower === 'select' && this.#depth === 0) this.#mainSelect = true;
      return;
    }
    const prev = this.#previous;
    const continues =
      prev === undefined ||
      prev.kind === 'open' ||
      (prev.kind === 'word' && TSQL_SET_OPERATORS.has(prev.lower)) ||
      (prev.kind === 'close' &&
        this.#first?.kind === 'word' &&
        this.#first.lower === 'with' &&
        !this.#mainSelect);
    if (!continues) {
      throw this.#refuse(token.at, 'holds a second statement', 'a sync runs one SELECT: remove the rest');
    }
    this.#mainSelect = true;
  }

  #word(i: number): number {
    const s = this.#src;
    let j = i + 1;
    while (j < s.length && isWordPart(s[j]!, this.#dialect)) j++;
    const lower = s.slice(i, j).toLowerCase();
    // prefixed string literals: E'…' (backslash escapes), N'…', B'…', X'…', U&'…', U&"…"
    if (s[j] === "'") {
      if (this.#dialect === 'postgres' && lower === 'e')
        return this.#quoted(i, j, "'", 'a string literal', true);
      if (lower === 'n' || lower === 'b' || lower === 'x')
        return this.#quoted(i, j, "'", 'a string literal', false);
    }
    if (
      this.#dialect === 'postgres' &&
      lower === 'u' &&
      s[j] === '&' &&
      (s[j + 1] === "'" || s[j + 1] === '"')
    ) {
      const what = s[j + 1] === "'" ? 'a string literal' : 'a quoted identifier';
      return this.#quoted(i, j + 1, s[j + 1]!, what, false);
    }
    this.#token({ kind: 'word', lower, at: i });
    return j;
  }

  #number(i: number): number {
    const s = this.#src;
    let j = i + 1;
    while (j < s.length && /[0-9A-Za-z_.]/.test(s[j]!)) {
      // 1e-5 / 1e+5
      if ((s[j] === 'e' || s[j] === 'E') && (s[j + 1] === '-' || s[j + 1] === '+')) j++;
      j++;
    }
    this.#token({ kind: 'other', at: i });
    return j;
  }

  /** A literal or quoted name from `start` (its prefix) whose quote is at `quote`; `''` (or `""`, `]]`) escapes it. */
  #quoted(start: number, quote: number, close: string, what: string, backslash: boolean): number {
    const s = this.#src;
    let j = quote + 1;
    for (;;) {
      if (j >= s.length) {
        throw this.#refuse(start, `has ${what} that is never closed`, `close it with ${close}`);
      }
      const c = s[j]!;
      if (backslash && c === '\\') {
        j += 2;
        continue;
      }
      if (c === close) {
        if (s[j + 1] === close) {
          j += 2;
          continue;
        }
        break;
      }
      if (c === '{' && s[j + 1] === '{') this.#inside(j, j + 2, what);
      j++;
    }
    this.#token({ kind: 'other', at: start });
    return j + 1;
  }

  /** PostgreSQL: `$tag$…$tag$` / `$$…$$`, or a positional parameter written by hand (`$1`). */
  #dollar(i: number): number {
    const s = this.#src;
    const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(s.slice(i, i + 200));
    if (tag === null) {
      if (isDigit(s[i + 1] ?? '')) {
        throw this.#refuse(i, `uses the parameter ${/^\$\d+/.exec(s.slice(i))![0]}`, PLACEHOLDER_HINT);
      }
      this.#token({ kind: 'other', at: i });
      return i + 1;
    }
    const close = s.indexOf(tag[0], i + tag[0].length);
    if (close < 0)
      throw this.#refuse(i, `has a ${tag[0]} string that is never closed`, `close it with ${tag[0]}`);
    this.#inside(i + tag[0].length, close, 'a dollar-quoted string');
    this.#token({ kind: 'other', at: i });
    return close + tag[0].length;
  }

  /** T-SQL: `@@name` is a system function; `@name` is a variable, which a sync's query cannot declare. */
  #variable(i: number): number {
    const s = this.#src;
    if (s[i + 1] === '@') {
      let j = i + 2;
      while (j < s.length && isWordPart(s[j]!, 'mssql')) j++;
      this.#token({ kind: 'other', at: i });
      return j;
    }
    const name = /^@[A-Za-z0-9_@#$]*/.exec(s.slice(i))![0];
    throw this.#refuse(i, `uses the variable ${name}`, PLACEHOLDER_HINT);
  }

  #lineComment(i: number): number {
    const s = this.#src;
    const end = s.indexOf('\n', i);
    const stop = end < 0 ? s.length : end;
    this.#inside(i, stop, 'a comment');
    return stop;
  }

  /** Block comments nest on both engines. */
  #blockComment(i: number): number {
    const s = this.#src;
    let depth = 0;
    let j = i;
    while (j < s.length) {
      if (s[j] === '/' && s[j + 1] === '*') {
        depth++;
        j += 2;
      } else if (s[j] === '*' && s[j + 1] === '/') {
        depth--;
        j += 2;
        if (depth === 0) return j;
      } else {
        if (s[j] === '{' && s[j + 1] === '{') this.#inside(j, j + 2, 'a comment');
        j++;
      }
    }
    throw this.#refuse(i, 'has a /* comment that is never closed', 'close it with */');
  }

  #placeholder(i: number): number {
    const s = this.#src;
    const close = s.indexOf('}}', i + 2);
    if (close < 0) throw this.#refuse(i, 'has a {{ that is never closed', PLACEHOLDER_HINT);
    const name = s.slice(i + 2, close).trim();
    if (name !== LAST_SYNC_TIME) {
      throw this.#refuse(
        i,
        `uses the unknown placeholder {{${name.slice(0, 40)}}}`,
        `the only placeholder is {{${LAST_SYNC_TIME}}}`,
      );
    }
    const end = close + 2;
    const before = s[i - 1] ?? ' ';
    const after = s[end] ?? ' ';
    const param = PARAMETER[this.#dialect];
    // `a{{…}}` must not become the name `a$1`, nor `{{…}}b` the junk `$1b`
    const text =
      (isWordPart(before, this.#dialect) ? ' ' : '') + param + (isWordPart(after, this.#dialect) ? ' ' : '');
    this.#out += s.slice(this.#copied, i) + text;
    this.#copied = end;
    this.#placeholders++;
    this.#token({ kind: 'other', at: i });
    return end;
  }

  /**
   * Refuses `{{last_sync_time}}` starting in `[from, to)` of a literal, name or comment: it would not be
   * bound there. Other text in braces (`'{{1,2},{3,4}}'`, a template in a string) is the customer's data.
   */
  #inside(from: number, to: number, what: string): void {
    // one position (`to` = `from` + 2) is checked where it stands, a range is searched
    const re = to - from === 2 ? /\{\{\s*last_sync_time\s*\}\}/y : /\{\{\s*last_sync_time\s*\}\}/g;
    re.lastIndex = from;
    const m = re.exec(this.#src);
    if (m !== null && m.index < to) {
      throw this.#refuse(m.index, `has {{${LAST_SYNC_TIME}}} inside ${what}`, PLACEHOLDER_HINT);
    }
  }

  #refuse(at: number, what: string, hint: string): UsageError {
    const { line, column } = position(this.#src, at);
    return new UsageError(`the sync query ${what} at line ${line}, column ${column}`, hint);
  }
}

/** 1-based line and column of an offset. */
export function position(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

function isSpace(c: string): boolean {
  return c === ' ' || c === '\n' || c === '\t' || c === '\r' || c === '\f' || c === '\v';
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

/** A letter, `_`, any non-ASCII character, and on T-SQL `#` (temporary tables). */
function isWordStart(c: string, dialect: SqlDialect): boolean {
  return (
    (c >= 'a' && c <= 'z') ||
    (c >= 'A' && c <= 'Z') ||
    c === '_' ||
    c.charCodeAt(0) >= 0x80 ||
    (dialect === 'mssql' && c === '#')
  );
}

/** Identifier characters after the first: also digits and `$` (and on T-SQL `@`, `#`). */
function isWordPart(c: string, dialect: SqlDialect): boolean {
  return isWordStart(c, dialect) || isDigit(c) || c === '$' || (dialect === 'mssql' && c === '@');
}
