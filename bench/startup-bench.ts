import { spawnSync } from 'node:child_process';
import { type BenchContext, round } from './bench-context.js';

const RUNS = 11;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Wall times of `node ...args`, `RUNS` times after one warm-up run (which must exit 0, as every run must). */
function timeNode(args: readonly string[]): number[] {
  const times: number[] = [];
  for (let i = -1; i < RUNS; i++) {
    const started = performance.now();
    const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
    if (i >= 0) times.push((performance.now() - started) / 1000);
  }
  return times;
}

/**
 * Start-up of the CLI: `wharf --version`, `wharf status --help` (loads one command with its stages) and bare
 * `node -e 0` (the floor), medians of 11 runs with their ranges. Goal: `wharf --version` under 250 ms.
 */
export async function startupBench(ctx: BenchContext): Promise<void> {
  const floor = timeNode(['-e', '0']);
  const cases: [string, readonly string[]][] = [
    ['wharf --version', ['--version']],
    ['wharf status --help', ['status', '--help']],
    ['wharf --help', ['--help']],
  ];
  const details: Record<string, unknown> = { runs: RUNS, node: summary(floor) };
  ctx.rows.push({
    section: 'startup',
    name: `node -e 0, the floor (range ${round(Math.min(...floor), 3)}–${round(Math.max(...floor), 3)} s)`,
    seconds: round(median(floor), 3),
  });
  for (const [name, args] of cases) {
    const times = timeNode(['bin/wharf.js', ...args]);
    const m = median(times);
    details[name] = summary(times);
    const isVersion = args[0] === '--version';
    ctx.rows.push({
      section: 'startup',
      name: `${name} (range ${round(Math.min(...times), 3)}–${round(Math.max(...times), 3)} s)`,
      seconds: round(m, 3),
      ...(isVersion ? { goal: '< 0.25 s', met: m < 0.25 } : {}),
    });
    ctx.log(`startup: ${name} ${round(m, 3)} s`);
  }
  ctx.extra.startup = details;
}

function summary(times: readonly number[]): { median: number; min: number; max: number } {
  return {
    median: round(median(times), 3),
    min: round(Math.min(...times), 3),
    max: round(Math.max(...times), 3),
  };
}
