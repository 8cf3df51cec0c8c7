import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { describeConnection, parseConnectionUrl, pgClientConfig } from '../connectors/connection-url.js';
import { WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';

const NASTY = 'p@ss:w/o?r#d[1]%"x y';

describe('warehouse URLs', () => {
  it('parses a postgres URL with a percent-encoded nasty password', () => {
    for (const scheme of ['postgres', 'postgresql']) {
      const url = `${scheme}://wh_user:${encodeURIComponent(NASTY)}@db.example.com:6543/ware%20house?sslmode=verify-full&application_name=x`;
      const { settings, password } = parseConnectionUrl(url);
      expect(settings).toEqual({
        engine: 'postgres',
        host: 'db.example.com',
        port: 6543,
        database: 'ware house',
        user: 'wh_user',
        options: { sslmode: 'verify-full', application_name: 'x' },
      });
      expect(password?.reveal()).toBe(NASTY);
      expect(JSON.stringify(settings)).not.toContain('p@ss');
      expect(describeConnection(settings)).toBe(
        'postgres://wh_user@db.example.com:6543/ware%20house?sslmode=verify-full&application_name=x',
      );
      expect(inspect(parseConnectionUrl(url))).not.toContain('p@ss');
    }
  });

  it('takes defaults, IPv6 hosts, a password parameter, and a password given apart', () => {
    const plain = parseConnectionUrl('postgres://u@127.0.0.1/db');
    expect(plain.settings.port).toBe(5432);
    expect(plain.password).toBeUndefined();
    expect(parseConnectionUrl('postgres://u@[::1]:5433/db').settings.host).toBe('::1');
    expect(describeConnection(parseConnectionUrl('postgres://u@[::1]:5433/db').settings)).toBe(
      'postgres://u@[::1]:5433/db',
    );
    const param = parseConnectionUrl(`postgres://u@h/db?password=${encodeURIComponent(NASTY)}`);
    expect(param.password?.reveal()).toBe(NASTY);
    expect(param.settings.options).toEqual({});
    const apart = parseConnectionUrl('postgres://u:old@h/db', new Secret('from-stdin'));
    expect(apart.password?.reveal()).toBe('from-stdin');
  });

  it('parses both SQL Server forms', () => {
    const url = parseConnectionUrl(`mssql://sa:${encodeURIComponent(NASTY)}@sql.example.com/wh?encrypt=true`);
    expect(url.settings).toEqual({
      engine: 'mssql',
      host: 'sql.example.com',
      port: 1433,
      database: 'wh',
      user: 'sa',
      options: { encrypt: 'true' },
    });
    expect(url.password?.reveal()).toBe(NASTY);
    const jdbc = parseConnectionUrl(
      'sqlserver://sql.example.com:1444;database=wh;user=loader;password={a;b}}c=d};encrypt=true;trustServerCertificate=false',
    );
    expect(jdbc.settings).toEqual({
      engine: 'mssql',
      host: 'sql.example.com',
      port: 1444,
      database: 'wh',
      user: 'loader',
      options: { encrypt: 'true', trustServerCertificate: 'false' },
    });
    expect(jdbc.password?.reveal()).toBe('a;b}c=d');
    const literal = parseConnectionUrl(`sqlserver://h;databaseName=wh;userName=u;password=${NASTY}`);
    expect(literal.password?.reveal()).toBe(NASTY);
    expect(literal.settings.port).toBe(1433);
  });

  it('refuses bad URLs without echoing them', () => {
    for (const url of [
      'mysql://u:canary-secret@h/db',
      'postgres://u:canary-secret@h',
      'postgres://u:canary%zzsecret@h/db',
      'postgres://u:canary-secret@h:99999/db',
      'postgres://u:canary-secret@h/db?sslmode=sometimes',
      'sqlserver://h;user=u;password=canary-secret',
      'canary-secret',
    ]) {
      let error: unknown;
      try {
        parseConnectionUrl(url);
      } catch (e) {
        error = e;
      }
      expect(error, url).toBeInstanceOf(WharfError);
      expect((error as WharfError).kind).toBe('usage');
      for (const shown of [
        String(error),
        (error as Error).stack ?? '',
        JSON.stringify(error),
        inspect(error),
      ]) {
        expect(shown).not.toContain('canary');
      }
    }
  });

  it('maps sslmode to node-postgres TLS options', () => {
    const config = (mode: string, extra = '') =>
      pgClientConfig(
        parseConnectionUrl(`postgres://u@db.example.com/d?sslmode=${mode}${extra}`).settings,
        new Secret('pw'),
      );
    expect(config('disable').ssl).toBe(false);
    expect(config('prefer').ssl).toBe(false);
    expect(config('require').ssl).toEqual({ rejectUnauthorized: false });
    expect(config('verify-full').ssl).toEqual({ rejectUnauthorized: true });
    const verifyCa = config('verify-ca').ssl as {
      rejectUnauthorized: boolean;
      checkServerIdentity: () => unknown;
    };
    expect(verifyCa.rejectUnauthorized).toBe(true);
    expect(verifyCa.checkServerIdentity()).toBeUndefined();
    expect(config('disable').password).toBe('pw');
    expect(() => config('verify-full', '&sslrootcert=/nonexistent/ca.pem')).toThrow(/sslrootcert/);
  });
});
