import { describe, expect, it } from 'vitest';
import { UsageError } from '../core/errors.js';
import { parseQueryTemplate, type SqlDialect } from '../reverse-etl/query-template.js';

function sql(text: string, dialect: SqlDialect = 'postgres'): string {
  return parseQueryTemplate(text, dialect).sql;
}

function refusal(text: string, dialect: SqlDialect = 'postgres'): string {
  try {
    parseQueryTemplate(text, dialect);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).oneLine();
  }
  throw new Error(`accepted: ${text}`);
}

const HINT =
  'write {{last_sync_time}} where a value goes, outside quotes and comments, e.g. WHERE updated_at >= {{last_sync_time}}; Wharf sends it as a bound parameter';

describe('the query template (PostgreSQL and Redshift)', () => {
  it('turns every placeholder into the same $1, spaces inside the braces allowed', () => {
    expect(sql('SELECT id AS userId FROM users WHERE last_updated >= {{last_sync_time}}')).toBe(
      'SELECT id AS userId FROM users WHERE last_updated >= $1',
    );
    expect(sql('select 1 where a > {{ last_sync_time }} or b > {{last_sync_time  }}::bigint;')).toBe(
      'select 1 where a > $1 or b > $1::bigint',
    );
    const t = parseQueryTemplate('select a from t where x>={{\tlast_sync_time\n}}', 'postgres');
    expect(t.sql).toBe('select a from t where x>=$1');
    expect(t.placeholders).toBe(1);
    expect(parseQueryTemplate('select 1', 'postgres').placeholders).toBe(0);
  });

  it('keeps the placeholder apart from names around it', () => {
    expect(sql('select a from t where x = a{{last_sync_time}}b')).toBe('select a from t where x = a $1 b');
  });

  it('leaves literals, quoted names, dollar quotes and comments as written', () => {
    const text = [
      "select 'it''s {' as a, E'\\'{{' as b, $$ {x} $$ as c, $tag$ $$ $tag$ as d, \"we\"\"ird\" as e,",
      "  U&'\\0041' as f -- a comment",
      '/* nested /* comment */ still */ from t where t.x >= {{last_sync_time}} ; -- done',
      '  /* after */',
    ].join('\n');
    expect(sql(text)).toBe(
      [
        "select 'it''s {' as a, E'\\'{{' as b, $$ {x} $$ as c, $tag$ $$ $tag$ as d, \"we\"\"ird\" as e,",
        "  U&'\\0041' as f -- a comment",
        '/* nested /* comment */ still */ from t where t.x >= $1',
      ].join('\n'),
    );
  });

  it('refuses the placeholder inside a literal, a quoted name, a dollar quote or a comment', () => {
    expect(refusal("select 1 where a = '{{last_sync_time}}'")).toBe(
      `the sync query has {{last_sync_time}} inside a string literal at line 1, column 21; ${HINT}`,
    );
    expect(refusal("select 1 where a = E'\\'{{ last_sync_time }}'")).toBe(
      `the sync query has {{last_sync_time}} inside a string literal at line 1, column 24; ${HINT}`,
    );
    expect(refusal('select "{{last_sync_time}}" from t')).toBe(
      `the sync query has {{last_sync_time}} inside a quoted identifier at line 1, column 9; ${HINT}`,
    );
    expect(refusal('select $q$ {{last_sync_time}} $q$')).toBe(
      `the sync query has {{last_sync_time}} inside a dollar-quoted string at line 1, column 12; ${HINT}`,
    );
    expect(refusal('select 1\n-- since {{last_sync_time}}\nfrom t')).toBe(
      `the sync query has {{last_sync_time}} inside a comment at line 2, column 10; ${HINT}`,
    );
    expect(refusal('select 1 /* {{last_sync_time}} */')).toBe(
      `the sync query has {{last_sync_time}} inside a comment at line 1, column 13; ${HINT}`,
    );
  });

  it('refuses unknown placeholders, hand-written parameters, second statements and writes', () => {
    expect(refusal('select 1 where a > {{ last_run }}')).toBe(
      'the sync query uses the unknown placeholder {{last_run}} at line 1, column 20; the only placeholder is {{last_sync_time}}',
    );
    // braces inside a literal are the customer's text: a 2-D array, a template
    expect(sql("select '{{1,2},{3,4}}'::int[] as a, '{{ now }}' as b")).toBe(
      "select '{{1,2},{3,4}}'::int[] as a, '{{ now }}' as b",
    );
    expect(refusal('select 1 where a > {{last_sync_time')).toBe(
      `the sync query has a {{ that is never closed at line 1, column 20; ${HINT}`,
    );
    expect(refusal('select 1 where a > $1')).toBe(
      `the sync query uses the parameter $1 at line 1, column 20; ${HINT}`,
    );
    expect(refusal('select 1; delete from users')).toBe(
      'the sync query holds a second statement after the ";" at line 1, column 11; a sync runs one SELECT: remove the rest',
    );
    expect(refusal('select 1;;')).toBe(
      'the sync query holds a second statement after the ";" at line 1, column 10; a sync runs one SELECT: remove the rest',
    );
    expect(refusal("select 'a;b' as x; /* c */ select 2")).toBe(
      'the sync query holds a second statement after the ";" at line 1, column 28; a sync runs one SELECT: remove the rest',
    );
    expect(refusal('delete from users')).toBe(
      "the sync query does not start with SELECT at line 1, column 1; a sync's query only reads: start it with SELECT, WITH, VALUES or TABLE",
    );
    expect(refusal("select 'never closed")).toBe(
      "the sync query has a string literal that is never closed at line 1, column 8; close it with '",
    );
    expect(refusal('  ')).toBe('the sync query is empty; write one SELECT statement');
  });
});

describe('the query template (T-SQL)', () => {
  it('turns every placeholder into @p1', () => {
    expect(sql('SELECT id AS userId FROM users WHERE last_updated >= {{last_sync_time}}', 'mssql')).toBe(
      'SELECT id AS userId FROM users WHERE last_updated >= @p1',
    );
    expect(
      sql(
        "with a as (select [we]]ird] as x, N'{{' as y from t where u > {{ last_sync_time }}) select * from a union all select 1, N'x' where @@ROWCOUNT >= {{last_sync_time}};",
        'mssql',
      ),
    ).toBe(
      "with a as (select [we]]ird] as x, N'{{' as y from t where u > @p1) select * from a union all select 1, N'x' where @@ROWCOUNT >= @p1",
    );
    expect(sql('select top 10 * from t order by 1 offset 0 rows fetch next 5 rows only', 'mssql')).toBe(
      'select top 10 * from t order by 1 offset 0 rows fetch next 5 rows only',
    );
  });

  it('refuses the placeholder in literals and names, variables, writes and second statements', () => {
    expect(refusal("select 1 where a = N'{{last_sync_time}}'", 'mssql')).toBe(
      `the sync query has {{last_sync_time}} inside a string literal at line 1, column 22; ${HINT}`,
    );
    expect(refusal('select [{{last_sync_time}}] from t', 'mssql')).toBe(
      `the sync query has {{last_sync_time}} inside a quoted identifier at line 1, column 9; ${HINT}`,
    );
    expect(refusal('select 1 where a > @p1', 'mssql')).toBe(
      `the sync query uses the variable @p1 at line 1, column 20; ${HINT}`,
    );
    expect(refusal('select 1 select 2', 'mssql')).toBe(
      'the sync query holds a second statement at line 1, column 10; a sync runs one SELECT: remove the rest',
    );
    expect(refusal('select 1 delete from users', 'mssql')).toBe(
      'the sync query uses DELETE, which writes or starts another statement at line 1, column 10; a sync runs one SELECT that only reads; quote a column of that name as [name]',
    );
    expect(refusal('select * into copy_of_users from users', 'mssql')).toBe(
      'the sync query uses INTO, which writes or starts another statement at line 1, column 10; a sync runs one SELECT that only reads; quote a column of that name as [name]',
    );
    expect(refusal('with a as (select 1 as x) select * from a select 2', 'mssql')).toBe(
      'the sync query holds a second statement at line 1, column 43; a sync runs one SELECT: remove the rest',
    );
    expect(refusal('values (1)', 'mssql')).toBe(
      "the sync query does not start with SELECT at line 1, column 1; a sync's query only reads: start it with SELECT or WITH",
    );
  });
});
