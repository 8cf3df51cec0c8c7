// Wharf operator console: plain JavaScript, no build step. Loaded by the sign-in page (index.html) with the
// bearer token, which it keeps in sessionStorage. Every piece of data is put in the page as text (never HTML).
(() => {
  const token = sessionStorage.getItem('wharf.token');
  const PAGE = 50;
  const REFRESH_MS = 15_000;
  const state = {
    session: null,
    offset: 0,
    q: '',
    filterState: '',
    sort: 'lag',
    order: 'desc',
    selected: null,
    hours: 6,
    page: null,
  };

  // ---- helpers ---------------------------------------------------------------------------------------
  /** An element with attributes (`on*` are listeners) and children (strings become text). */
  function el(tag, attrs = {}, ...children) {
    const svg = ['svg', 'polyline', 'circle', 'line', 'text', 'title', 'path', 'g'].includes(tag);
    const node = svg
      ? document.createElementNS('http://www.w3.org/2000/svg', tag)
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body?.error ?? `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  /** A JSON call with the bearer token; a 401 signs out. */
  async function api(path, options = {}) {
    const r = await fetch(path, {
      ...options,
      headers: {
        authorization: `Bearer ${token}`,
        ...(options.body ? { 'content-type': 'application/json' } : {}),
      },
    });
    const body = await r.json().catch(() => null);
    if (r.status === 401) {
      signOut();
      throw new ApiError(401, body);
    }
    if (!r.ok) throw new ApiError(r.status, body);
    return body;
  }

  function signOut() {
    sessionStorage.removeItem('wharf.token');
    location.reload();
  }

  /** 75 → "1m 15s"; null → "—". */
  function lag(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    if (seconds < 90) return `${seconds}s`;
    if (seconds < 5400) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
    if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
    return `${Math.floor(seconds / 86_400)}d ${Math.floor((seconds % 86_400) / 3600)}h`;
  }

  const count = (n) => (n ?? 0).toLocaleString('en-US');
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
  /** Failing now: parked, status unreadable, or a failed load today. */
  const failing = (s) =>
    s.state === 'failing' ||
    s.state === 'paused' ||
    Boolean(s.error) ||
    (s.failuresToday > 0 && Boolean(s.lastError));

  // ---- layout ----------------------------------------------------------------------------------------
  const root = document.getElementById('app');
  const scopeText = el('span', { class: 'scope' });
  const exported = el('span', { class: 'exported' });
  const states = el('div', { class: 'states', id: 'states' });
  const filter = el('input', {
    id: 'filter',
    type: 'search',
    placeholder: 'filter: id, account, engine, state, error',
    'aria-label': 'filter connectors',
  });
  const stateSelect = el(
    'select',
    { id: 'state-filter', 'aria-label': 'state' },
    ['', 'active', 'failing', 'paused', 'disabled'].map((s) =>
      el('option', { value: s, text: s || 'any state' }),
    ),
  );
  const sortSelect = el(
    'select',
    { id: 'sort', 'aria-label': 'sort' },
    [
      ['lag:desc', 'most behind first'],
      ['lag:asc', 'least behind first'],
      ['failuresToday:desc', 'most failures today'],
      ['rowsToday:desc', 'most rows today'],
      ['id:asc', 'id'],
      ['account:asc', 'account'],
    ].map(([v, t]) => el('option', { value: v, text: t })),
  );
  const tbody = el('tbody');
  const pager = el('div', { class: 'pager' });
  const detail = el('aside', { id: 'detail', class: 'panel', hidden: true });
  const syncs = el('section', { id: 'syncs', class: 'panel', hidden: true });

  root.append(
    el(
      'header',
      {},
      el('strong', { text: 'Wharf' }),
      scopeText,
      exported,
      el('button', { type: 'button', class: 'link', onclick: signOut, text: 'sign out' }),
    ),
    el(
      'main',
      {},
      el(
        'section',
        { id: 'connectors', class: 'panel' },
        el('div', { class: 'toolbar' }, el('h2', { text: 'Connectors' }), states),
        el('div', { class: 'toolbar' }, filter, stateSelect, sortSelect),
        el(
          'table',
          {},
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ['id', 'account', 'engine', 'state', 'lag', 'last window', 'rows today', 'last error'].map(
                (h) => el('th', { text: h }),
              ),
            ),
          ),
          tbody,
        ),
        pager,
      ),
      detail,
    ),
    syncs,
  );

  // ---- the connectors table --------------------------------------------------------------------------
  let loading = 0;
  async function loadPage() {
    const mine = ++loading;
    const params = new URLSearchParams({
      limit: String(PAGE),
      offset: String(state.offset),
      sort: state.sort,
      order: state.order,
    });
    if (state.q) params.set('q', state.q);
    if (state.filterState) params.set('state', state.filterState);
    const page = await api(`/v1/status?${params}`);
    if (mine !== loading) return; // a newer request is under way
    state.page = page;
    renderPage(page);
    if (!performance.getEntriesByName('wharf:connectors').length) performance.mark('wharf:connectors');
  }

  function renderPage(page) {
    exported.textContent = `exported up to ${when(page.exportedUpTo)} (${count(page.exportedWindows)} windows)`;
    states.replaceChildren(
      ...Object.entries(page.states)
        .sort()
        .map(([s, n]) =>
          el('button', {
            type: 'button',
            class: `chip state-${s}${state.filterState === s ? ' on' : ''}`,
            text: `${s} ${count(n)}`,
            onclick: () => {
              state.filterState = state.filterState === s ? '' : s;
              stateSelect.value = state.filterState;
              state.offset = 0;
              loadPage().catch(show);
            },
          }),
        ),
    );
    tbody.replaceChildren(
      ...page.connectors.map((s) =>
        el(
          'tr',
          {
            'data-id': s.id,
            class: `${failing(s) ? 'bad' : ''}${state.selected === s.id ? ' selected' : ''}`,
            tabindex: 0,
            onclick: () => select(s.id),
            onkeydown: (e) => e.key === 'Enter' && select(s.id),
          },
          el('td', { text: s.id }),
          el('td', { text: s.account }),
          el('td', { text: s.engine }),
          el('td', {}, el('span', { class: `badge state-${s.state}`, text: s.state })),
          el('td', { class: 'num', text: lag(s.lagSeconds) }),
          el('td', { class: 'mono', text: s.lastWindow ?? '—' }),
          el('td', { class: 'num', text: count(s.rowsToday) }),
          el('td', {
            class: 'error',
            title: s.error ?? s.lastError ?? '',
            text: s.error ?? s.stateReason ?? s.lastError ?? '',
          }),
        ),
      ),
    );
    if (page.connectors.length === 0) {
      tbody.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'no connectors match' })));
    }
    const first = page.total === 0 ? 0 : state.offset + 1;
    const last = Math.min(state.offset + PAGE, page.total);
    pager.replaceChildren(
      el('button', {
        type: 'button',
        disabled: state.offset === 0,
        text: '‹ previous',
        onclick: () => {
          state.offset = Math.max(0, state.offset - PAGE);
          loadPage().catch(show);
        },
      }),
      el('span', { id: 'page-info', text: `${count(first)}–${count(last)} of ${count(page.total)}` }),
      el('button', {
        type: 'button',
        disabled: last >= page.total,
        text: 'next ›',
        onclick: () => {
          state.offset += PAGE;
          loadPage().catch(show);
        },
      }),
    );
  }

  let typing;
  filter.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.q = filter.value.trim();
      state.offset = 0;
      loadPage().catch(show);
    }, 200);
  });
  stateSelect.addEventListener('change', () => {
    state.filterState = stateSelect.value;
    state.offset = 0;
    loadPage().catch(show);
  });
  sortSelect.addEventListener('change', () => {
    [state.sort, state.order] = sortSelect.value.split(':');
    state.offset = 0;
    loadPage().catch(show);
  });

  // ---- one connector: facts, lag chart, runs, replay -------------------------------------------------
  async function select(id) {
    state.selected = id;
    history.replaceState(null, '', `#connector=${id}`);
    for (const tr of tbody.querySelectorAll('tr')) tr.classList.toggle('selected', tr.dataset.id === id);
    detail.hidden = false;
    detail.replaceChildren(el('p', { class: 'muted', text: `connector ${id}…` }));
    const [status, lagHistory, runs] = await Promise.all([
      api(`/v1/connectors/${id}/status`),
      api(`/v1/connectors/${id}/lag?hours=${state.hours}`),
      api(`/v1/connectors/${id}/runs?limit=20`),
    ]);
    // a bucket connector's deliveries (when the server offers them)
    const deliveries =
      status.delivery && state.session.groups.includes('deliveries')
        ? (await api(`/v1/connectors/${id}/deliveries?limit=10`)).deliveries
        : null;
    if (state.selected !== id) return;
    renderDetail(status, lagHistory, runs, deliveries);
  }

  function renderDetail(s, lagHistory, runs, deliveries) {
    // what the last action said stays through the re-render that follows it
    const said = state.said?.id === s.id ? state.said : null;
    const message = el('p', {
      class: `message${said?.bad ? ' bad' : ''}`,
      role: 'status',
      text: said?.text ?? '',
    });
    const say = (text, bad = false) => {
      state.said = { id: s.id, text, bad };
      message.className = `message${bad ? ' bad' : ''}`;
      message.textContent = text;
    };
    const act = (label, path, body) =>
      el('button', {
        type: 'button',
        text: label,
        onclick: async (e) => {
          const button = e.currentTarget;
          button.disabled = true;
          say(`${label}…`);
          try {
            const r = await api(path, { method: 'POST', ...(body ? { body: JSON.stringify(body()) } : {}) });
            say(
              r.family === 'bucket'
                ? `${label}: ${count(r.deliveries)} deliveries, ${count(r.files)} objects, ${count(r.rows)} rows`
                : r.windows !== undefined
                  ? `${label}: ${count(r.windows)} window(s), ${count(r.rowsStaged)} rows`
                  : `${label}: all checks passed`,
            );
            select(s.id).catch(show);
            loadPage().catch(show);
          } catch (error) {
            say(error.message, true);
          } finally {
            button.disabled = false;
          }
        },
      });
    const from = el('input', { type: 'datetime-local', id: 'replay-from', 'aria-label': 'replay from' });
    const to = el('input', { type: 'datetime-local', id: 'replay-to', 'aria-label': 'replay to' });
    const iso = (input) => (input.value ? new Date(input.value).toISOString() : undefined);
    const hours = el(
      'select',
      { 'aria-label': 'chart hours' },
      [1, 6, 24, 72].map((h) => el('option', { value: h, selected: h === state.hours, text: `last ${h} h` })),
    );
    hours.addEventListener('change', () => {
      state.hours = Number(hours.value);
      select(s.id).catch(show);
    });
    const parts = [
      el(
        'div',
        { class: 'toolbar' },
        el('h2', { text: `Connector ${s.id}` }),
        el('button', {
          type: 'button',
          class: 'link',
          text: 'close',
          onclick: () => {
            state.selected = null;
            detail.hidden = true;
            history.replaceState(null, '', '#');
          },
        }),
      ),
      el(
        'dl',
        {},
        ...[
          ['account', s.account],
          ['engine', s.engine],
          ['state', s.state + (s.stateReason ? ` (${s.stateReason})` : '')],
          ['lag', lag(s.lagSeconds)],
          ['last window', s.lastWindow ?? '—'],
          ['windows behind', s.windowsBehind ?? '—'],
          ['rows loaded', count(s.rows)],
          ...(s.delivery
            ? [
                [
                  'delivered',
                  `${count(s.delivery.deliveries)} deliveries, ${count(s.delivery.objects)} objects`,
                ],
              ]
            : []),
          ['today', `${count(s.rowsToday)} rows, ${s.loadsToday} loads, ${s.failuresToday} failures`],
          ['streams', s.streams.map((x) => x.stream).join(', ')],
        ].flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]),
      ),
      s.error || s.lastError
        ? el(
            'p',
            { class: 'last-error' },
            el('strong', {
              text: s.error ? 'cannot read status: ' : `last error (${when(s.lastErrorAt)}): `,
            }),
            s.error ?? s.lastError,
          )
        : null,
      el('div', { class: 'toolbar' }, el('h3', { text: 'Lag' }), hours),
      lagChart(lagHistory.points, state.hours, s.lagSeconds),
      el(
        'div',
        { class: 'actions' },
        act('Test', `/v1/connectors/${s.id}/test`),
        act('Load now', `/v1/connectors/${s.id}/load`),
      ),
      el(
        'form',
        { class: 'replay', onsubmit: (e) => e.preventDefault() },
        el('h3', { text: 'Replay a range' }),
        el('label', {}, 'from ', from),
        el('label', {}, 'to ', to),
        act('Replay', `/v1/connectors/${s.id}/replay`, () => ({
          ...(iso(from) ? { from: iso(from) } : {}),
          ...(iso(to) ? { to: iso(to) } : {}),
        })),
      ),
      message,
      deliveries ? el('h3', { text: 'Deliveries' }) : null,
      deliveries ? deliveriesTable(deliveries) : null,
      el('h3', { text: 'Runs' }),
      runsTable(runs.runs),
    ];
    detail.replaceChildren(...parts.filter(Boolean));
  }

  function deliveriesTable(list) {
    if (list.length === 0) return el('p', { class: 'muted', text: 'no deliveries yet' });
    return el(
      'table',
      { class: 'deliveries' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['delivery', 'status', 'objects', 'rows'].map((h) => el('th', { text: h })),
        ),
      ),
      el(
        'tbody',
        {},
        list.map((d) =>
          el(
            'tr',
            {},
            el('td', { class: 'mono', title: d.manifestKey ?? '', text: d.id }),
            el(
              'td',
              {},
              el('span', { class: `badge run-${d.status === 'done' ? 'ok' : 'skipped'}`, text: d.status }),
            ),
            el('td', { class: 'num', text: count(d.files) }),
            el('td', { class: 'num', text: count(d.rows) }),
          ),
        ),
      ),
    );
  }

  function runsTable(runs) {
    if (runs.length === 0) return el('p', { class: 'muted', text: 'no runs yet' });
    return el(
      'table',
      { class: 'runs' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['finished', 'status', 'windows', 'rows', 'error'].map((h) => el('th', { text: h })),
        ),
      ),
      el(
        'tbody',
        {},
        runs.map((r) =>
          el(
            'tr',
            { class: r.status === 'failed' ? 'bad' : '' },
            el('td', { text: when(r.finishedAt ?? r.startedAt) }),
            el('td', {}, el('span', { class: `badge run-${r.status}`, text: r.status })),
            el('td', { class: 'num', text: count(r.windows) }),
            el('td', { class: 'num', text: count(r.rows) }),
            el('td', { class: 'error', title: r.error ?? '', text: r.error ?? '' }),
          ),
        ),
      ),
    );
  }

  /**
   * The lag over the last hours as an SVG: after each load run the lag is what the run left, and it grows by
   * one second a second until the next run (a saw tooth); failed runs are red dots; the last point is now.
   */
  function lagChart(points, hours, nowLag) {
    const W = 520;
    const H = 150;
    const M = { l: 48, r: 8, t: 10, b: 22 };
    const now = Date.now();
    const start = now - hours * 3_600_000;
    const known = points.filter((p) => p.lagSeconds !== null).map((p) => ({ ...p, t: Date.parse(p.at) }));
    const series = [];
    for (let i = 0; i < known.length; i++) {
      const p = known[i];
      series.push([p.t, p.lagSeconds]);
      const nextT = i + 1 < known.length ? known[i + 1].t : now;
      series.push([nextT, p.lagSeconds + Math.max(0, (nextT - p.t) / 1000)]);
    }
    if (series.length === 0 && nowLag !== null) series.push([now, nowLag]);
    const max = Math.max(60, ...series.map(([, v]) => v));
    const x = (t) => M.l + ((Math.max(t, start) - start) / (now - start)) * (W - M.l - M.r);
    const y = (v) => M.t + (1 - v / max) * (H - M.t - M.b);
    const svg = el('svg', {
      class: 'lag-chart',
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': `lag over the last ${hours} hours: ${known.length} runs, now ${lag(nowLag)}`,
    });
    svg.append(
      el('line', { x1: M.l, y1: y(0), x2: W - M.r, y2: y(0), class: 'axis' }),
      el('line', { x1: M.l, y1: M.t, x2: M.l, y2: y(0), class: 'axis' }),
      el('text', { x: M.l - 4, y: M.t + 8, 'text-anchor': 'end', text: lag(Math.round(max)) }),
      el('text', { x: M.l - 4, y: y(0), 'text-anchor': 'end', text: '0' }),
      el('text', { x: M.l, y: H - 6, text: `−${hours}h` }),
      el('text', { x: (M.l + W - M.r) / 2, y: H - 6, 'text-anchor': 'middle', text: `−${hours / 2}h` }),
      el('text', { x: W - M.r, y: H - 6, 'text-anchor': 'end', text: 'now' }),
    );
    if (series.length > 0) {
      svg.append(
        el('polyline', {
          class: 'lag-line',
          points: series.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
        }),
      );
    } else {
      svg.append(
        el('text', {
          x: W / 2,
          y: H / 2,
          'text-anchor': 'middle',
          class: 'muted',
          text: 'no loads in this period',
        }),
      );
    }
    for (const p of points.filter((q) => q.status !== 'ok')) {
      const t = Date.parse(p.at);
      svg.append(
        el(
          'circle',
          { cx: x(t).toFixed(1), cy: y(p.lagSeconds ?? 0).toFixed(1), r: 3.5, class: `run-${p.status}` },
          el('title', { text: `${p.status} at ${when(p.at)}` }),
        ),
      );
    }
    return svg;
  }

  // ---- reverse-ETL syncs: shown when the server offers them --------------------------------------------
  async function loadSyncs() {
    const body = await api('/v1/syncs?limit=200');
    const list = body.syncs ?? [];
    const out = el('div', { id: 'preview' });
    syncs.hidden = false;
    syncs.replaceChildren(
      el('h2', { text: 'Reverse-ETL syncs' }),
      list.length === 0
        ? el('p', { class: 'muted', text: 'no syncs' })
        : el(
            'table',
            {},
            el(
              'thead',
              {},
              el(
                'tr',
                {},
                ['id', 'name', 'account', 'type', 'state', ''].map((h) => el('th', { text: h })),
              ),
            ),
            el(
              'tbody',
              {},
              list.map((s) =>
                el(
                  'tr',
                  { 'data-sync': s.id },
                  el('td', { text: s.id }),
                  el('td', { text: s.name }),
                  el('td', { text: s.account ?? '' }),
                  el('td', { text: s.type }),
                  el('td', {}, el('span', { class: `badge state-${s.state}`, text: s.state })),
                  el(
                    'td',
                    {},
                    el('button', {
                      type: 'button',
                      text: 'Run Query',
                      onclick: () => preview(s, out).catch(show),
                    }),
                  ),
                ),
              ),
            ),
          ),
      out,
    );
  }

  async function preview(sync, out) {
    out.replaceChildren(el('p', { class: 'muted', text: `running the query of ${sync.name}…` }));
    let p;
    try {
      p = await api(`/v1/syncs/${sync.id}/preview`, { method: 'POST', body: JSON.stringify({ limit: 10 }) });
    } catch (error) {
      out.replaceChildren(el('p', { class: 'message bad', text: error.message }));
      return;
    }
    const columns = (p.columns ?? []).map((c) => c.name ?? c);
    out.replaceChildren(
      el('h3', { text: `Preview of ${sync.name}` }),
      el('pre', { class: 'sql', text: p.sql }),
      el(
        'p',
        {},
        p.parameter
          ? `bound: ${p.parameter.value} (${p.parameter.type}, last_sync_time)`
          : 'the query has no {{last_sync_time}}',
      ),
      el('h4', { text: `Rows (${p.rows.length})` }),
      el(
        'table',
        { class: 'rows' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            columns.map((c) => el('th', { text: c })),
          ),
        ),
        el(
          'tbody',
          {},
          p.rows.map((r) =>
            el(
              'tr',
              {},
              columns.map((c) =>
                el('td', {
                  text:
                    r[c] === null ? 'NULL' : typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c]),
                }),
              ),
            ),
          ),
        ),
      ),
      el('h4', { text: `Calls (${p.calls.length})` }),
      el('pre', { class: 'calls', text: p.calls.map((c) => JSON.stringify(c)).join('\n') || '—' }),
      el('h4', { text: `Rejected (${p.rejected.length})` }),
      p.rejected.length === 0
        ? el('p', { class: 'muted', text: 'none' })
        : el(
            'ul',
            { class: 'rejected' },
            p.rejected.map((r) => el('li', { text: `row ${r.row}: ${r.reason}` })),
          ),
    );
  }

  // ---- start -----------------------------------------------------------------------------------------
  const banner = el('p', { class: 'message bad', role: 'alert', hidden: true });
  root.prepend(banner);
  function show(error) {
    banner.hidden = false;
    banner.textContent = error.message;
  }

  async function start() {
    state.session = await api('/v1/session');
    scopeText.textContent = state.session.admin ? 'admin' : `account ${state.session.account}`;
    await loadPage();
    const m = /^#connector=(\d+)$/.exec(location.hash);
    if (m) select(m[1]).catch(show);
    if (state.session.groups.includes('syncs')) loadSyncs().catch(show);
    setInterval(() => {
      if (document.visibilityState === 'visible') loadPage().catch(show);
    }, REFRESH_MS);
  }
  start().catch(show);
})();
