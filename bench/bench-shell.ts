import { spawn } from 'node:child_process';
import type { ChildJob, ChildResult } from './wharf-child.js';

/** Runs a bash command line (with pipefail); resolves to its wall time in seconds. */
export function timeShell(command: string, env: Record<string, string> = {}): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -euo pipefail; ${command}`], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve((performance.now() - started) / 1000);
      else reject(new Error(`command failed (${code}): ${command.slice(0, 200)}\n${stderr.slice(-2000)}`));
    });
  });
}

/** Whether a program is on the PATH. */
export async function hasProgram(name: string): Promise<boolean> {
  try {
    await timeShell(`command -v ${name} >/dev/null`);
    return true;
  } catch {
    return false;
  }
}

/** Runs one job of Wharf's work in a child process and returns its report (with its peak RSS). */
export function runWharfChild(job: ChildJob): Promise<ChildResult & { wallSeconds: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/run-ts.js', 'bench/wharf-child.ts'], {
      env: { ...process.env, BENCH_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`wharf ${job.kind} job failed (${code}):\n${stderr.slice(-3000)}`));
        return;
      }
      resolve({ ...(JSON.parse(last) as ChildResult), wallSeconds: (performance.now() - started) / 1000 });
    });
  });
}
