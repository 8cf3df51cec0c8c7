import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PipelineMetrics } from '../pipeline/metrics.js';
import { type MetricsServer, startMetricsServer } from '../scheduler/metrics.js';

let metrics: PipelineMetrics;
let server: MetricsServer;
let healthy = true;

beforeAll(async () => {
  metrics = new PipelineMetrics();
  server = await startMetricsServer({ port: 0, metrics, health: () => ({ ok: healthy, lastTick: null }) });
});

afterAll(async () => {
  await server.close();
});

describe('metrics server', () => {
  it('listens on 127.0.0.1 by default', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it('serves the counters, gauges and histogram over HTTP', async () => {
    metrics.windowsExported.inc(3);
    metrics.rowsExported.inc(120);
    metrics.rowsLoaded.inc({ connector: '7' }, 40);
    metrics.loadFailures.inc({ connector: '7', kind: 'terminal' });
    metrics.loadSkips.inc({ connector: '8' });
    metrics.connectorLag.set({ connector: '7' }, 12.5);
    metrics.tickDuration.observe(0.3);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('wharf_windows_exported_total 3');
    expect(text).toContain('wharf_rows_exported_total 120');
    expect(text).toContain('wharf_rows_loaded_total{connector="7"} 40');
    expect(text).toContain('wharf_load_failures_total{connector="7",kind="terminal"} 1');
    expect(text).toContain('wharf_load_skips_total{connector="8"} 1');
    expect(text).toContain('wharf_connector_lag_seconds{connector="7"} 12.5');
    expect(text).toContain('wharf_tick_duration_seconds_count 1');
    expect(text).toContain('wharf_tick_duration_seconds_bucket{le="0.5"} 1');
  });

  it("keeps each scheduler's registry apart", async () => {
    const other = new PipelineMetrics();
    expect(await other.text()).toContain('wharf_windows_exported_total 0');
  });

  it('answers /healthz with 200 when healthy and 503 when not', async () => {
    healthy = true;
    const ok = await fetch(`${server.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, lastTick: null });
    healthy = false;
    const bad = await fetch(`${server.url}/healthz`);
    expect(bad.status).toBe(503);
    healthy = true;
  });

  it('answers 404 elsewhere', async () => {
    const res = await fetch(`${server.url}/nope`);
    expect(res.status).toBe(404);
  });
});
