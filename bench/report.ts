import type { BenchRow } from './bench-context.js';

const HEAD = ['section', 'case', 's', 'rows', 'rows/s', 'MB/s', 'RSS MB', 'ratio', 'goal', 'note'];

function cells(r: BenchRow): string[] {
  const n = (v: number | undefined) => (v === undefined ? '' : v.toLocaleString('en-US'));
  const goal = r.goal ? `${r.met ? 'met' : 'MISSED'}: ${r.goal}` : '';
  return [
    r.section,
    r.name,
    n(r.seconds),
    n(r.rows),
    n(r.rowsPerSecond),
    n(r.mbPerSecond),
    n(r.rssMB),
    r.ratio === undefined ? '' : `${r.ratio}×`,
    goal,
    r.note ?? '',
  ];
}

/** The results as a plain-text table for the terminal. */
export function renderTable(rows: readonly BenchRow[]): string {
  const all = [HEAD, ...rows.map(cells)];
  const widths = HEAD.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The results as Markdown. */
export function renderMarkdown(results: {
  readonly date: string;
  readonly machine: Record<string, unknown>;
  readonly postgres: Record<string, string>;
  readonly options: object;
  readonly rows: readonly BenchRow[];
  readonly failures: readonly string[];
}): string {
  const m = results.machine;
  const lines = [
    `# Benchmark results (${results.date})`,
    '',
    `Machine: ${m.cores} × ${m.cpu}, ${m.memoryGB} GB, Linux ${m.kernel}, Node ${m.node}.`,
    `PostgreSQL: ${Object.entries(results.postgres)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}.`,
    `Options: ${JSON.stringify(results.options)}.`,
    '',
    `| ${HEAD.join(' | ')} |`,
    `| ${HEAD.map(() => '---').join(' | ')} |`,
    ...results.rows.map(
      (r) =>
        `| ${cells(r)
          .map((c) => c.replace(/\|/g, '\\|'))
          .join(' | ')} |`,
    ),
  ];
  if (results.failures.length > 0) lines.push('', 'Failures:', ...results.failures.map((f) => `- ${f}`));
  return `${lines.join('\n')}\n`;
}
