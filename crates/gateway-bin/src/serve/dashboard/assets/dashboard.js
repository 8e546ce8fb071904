// The gateway's dashboard: reads /api/status every two seconds and redraws the page.
//
// Every node is built with DOM calls and text is set with textContent, never parsed as
// markup: route and upstream names come from the config, error lines from files an operator
// edits, and none of them may turn into script.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  // The page's own <svg> knows the SVG namespace: writing it here would put a URL in the
  // assets, and they are checked to name no origin but the admin listener's.
  const SVG_NS = document.getElementById('svg-namespace').namespaceURI;
  const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

  function fill(node, attributes, children) {
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  const el = (tag, attributes, ...children) =>
    fill(document.createElement(tag), attributes, children);
  const svg = (tag, attributes, ...children) =>
    fill(document.createElementNS(SVG_NS, tag), attributes, children);

  const dash = '–';
  const count = (n) => (typeof n === 'number' ? n.toLocaleString('en') : dash);
  const rate = (n) => (typeof n === 'number' ? n.toFixed(n >= 10 ? 0 : 2) : dash);
  function millis(n) {
    if (typeof n !== 'number') return dash;
    if (n >= 1000) return (n / 1000).toFixed(2) + ' s';
    return n.toFixed(n >= 10 ? 0 : 2) + ' ms';
  }
  const clock = (ms) => (typeof ms === 'number' && ms > 0 ? new Date(ms).toLocaleString() : dash);
  const sum = (values) => values.reduce((total, v) => total + (v || 0), 0);
  const badge = (text, kind) => el('span', { class: 'badge ' + (kind || '') }, text);

  const WIDTH = 150;
  const HEIGHT = 30;

  // A line over evenly spaced samples; a null sample (no request) breaks the line.
  function linePath(values, slots, top) {
    let path = '';
    let drawing = false;
    values.forEach((value, index) => {
      if (typeof value !== 'number') {
        drawing = false;
        return;
      }
      const x = ((slots - values.length + index) * WIDTH) / Math.max(slots - 1, 1);
      const y = HEIGHT - 1 - (value / top) * (HEIGHT - 2);
      path += (drawing ? ' L' : ' M') + x.toFixed(1) + ' ' + y.toFixed(1);
      drawing = true;
    });
    return path.trim();
  }

  function chart(title, slots, lines) {
    const top = Math.max(...lines.flatMap((line) => line.values.filter((v) => typeof v === 'number')), 0) || 1;
    const node = svg('svg', {
      class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img',
    }, svg('title', {}, `${title}; highest ${top.toFixed(2)}`));
    for (const line of lines) {
      const d = linePath(line.values, slots, top);
      // A single point draws nothing as a line: a short tick shows it.
      if (d) node.append(svg('path', { class: line.class, d: d.includes('L') ? d : d + ' h-2' }));
    }
    return node;
  }

  // Stacked bars per sample, one colour per status class, scaled to the busiest sample.
  function statusChart(status, slots) {
    const length = status['2xx'].length;
    const totals = Array.from({ length }, (_, i) => sum(CLASSES.map((c) => status[c][i])));
    const top = Math.max(...totals, 1);
    const node = svg('svg', {
      class: 'chart', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img',
    }, svg('title', {}, 'responses by status class per sample'));
    const width = WIDTH / slots;
    for (let i = 0; i < length; i += 1) {
      let y = HEIGHT;
      for (const name of CLASSES) {
        const value = status[name][i];
        if (!value) continue;
        const height = (value / top) * HEIGHT;
        y -= height;
        node.append(svg('rect', {
          class: 'bar-' + name, x: ((slots - length + i) * width).toFixed(2), y: y.toFixed(2),
          width: Math.max(width - 0.2, 0.5).toFixed(2), height: height.toFixed(2),
        }));
      }
    }
    return node;
  }

  function layerBadges(layers) {
    const on = [];
    if (layers.auth !== 'none') on.push('auth ' + layers.auth);
    if (layers.roles.length) on.push('roles: ' + layers.roles.join(', '));
    if (layers.rate_limit) on.push('rate limit');
    if (layers.cache) on.push('cache');
    if (layers.cors) on.push('CORS');
    if (layers.access) on.push('access lists');
    if (layers.compression) on.push('compression');
    return on.length ? on.map((text) => badge(text, 'badge-layer')) : [el('span', { class: 'muted' }, 'none')];
  }

  function routeRow(route, slots) {
    const history = route.history;
    const status = history.status;
    return el('tr', { 'data-route': route.name },
      el('td', {}, el('span', { class: 'route-name' }, route.name), el('code', {}, route.path)),
      el('td', {}, route.methods ? route.methods.join(', ') : 'any'),
      el('td', {}, route.upstream),
      el('td', {}, ...layerBadges(route.layers)),
      el('td', { class: 'number' }, rate(route.current.requests_per_second)),
      el('td', { class: 'number' }, millis(route.current.p50_ms)),
      el('td', { class: 'number' }, millis(route.current.p99_ms)),
      el('td', {}, chart('requests per second', slots, [{ class: 'line-rps', values: history.requests_per_second }])),
      el('td', {}, chart('latency in ms, p50 and p99', slots, [
        { class: 'line-p99', values: history.p99_ms },
        { class: 'line-p50', values: history.p50_ms },
      ])),
      el('td', {}, statusChart(status, slots)),
      el('td', { class: 'number' }, count(sum(status['2xx']))),
      el('td', { class: 'number' }, count(sum(status['4xx']))),
      el('td', { class: 'number' }, count(sum(status['5xx']))),
    );
  }

  function upstreamCard(upstream) {
    const breaker = upstream.circuit_breaker;
    const heading = el('h3', {}, upstream.name,
      breaker ? badge('circuit ' + breaker.replace('_', '-'), 'breaker-' + breaker) : badge('no circuit breaker'),
      upstream.available ? null : badge('no target available', 'health-unhealthy'));
    const rows = upstream.targets.map((target) => el('tr', {
      'data-target': target.address || target.url, 'data-health': target.healthy ? 'healthy' : 'unhealthy',
    },
    el('td', {}, el('code', {}, target.url)),
    el('td', {}, target.address ? el('code', {}, target.address) : dash),
    el('td', {}, badge(target.health, 'health-' + target.health)),
    el('td', {}, target.ejected ? badge('ejected', 'ejected') : 'no'),
    el('td', { class: 'number' }, count(target.in_flight)),
    el('td', {}, target.last_error ? el('span', { class: 'error-line' }, target.last_error) : dash)));
    return el('div', { class: 'upstream', 'data-upstream': upstream.name, 'data-breaker': breaker || 'none' },
      heading,
      el('table', {},
        el('thead', {}, el('tr', {}, ...['target', 'address', 'health', 'ejected', 'in flight', 'last error']
          .map((name) => el('th', name === 'in flight' ? { class: 'number' } : {}, name)))),
        el('tbody', {}, ...rows)));
  }

  function emptyRow(columns, text) {
    return el('tr', {}, el('td', { colspan: columns, class: 'muted' }, text));
  }

  function render(status) {
    const slots = status.history.samples;
    const routes = status.routes;
    document.getElementById('route-rows').replaceChildren(
      ...(routes.length ? routes.map((route) => routeRow(route, slots)) : [emptyRow(13, 'no routes')]));

    document.getElementById('upstream-list').replaceChildren(...status.upstreams.map(upstreamCard));

    const limited = routes.filter((route) => route.rate_limit);
    document.getElementById('rate-limit-rows').replaceChildren(...(limited.length
      ? limited.map((route) => {
        const { allowed, limited: refused } = route.rate_limit;
        const share = allowed + refused ? ((100 * refused) / (allowed + refused)).toFixed(1) : dash;
        return el('tr', { 'data-route': route.name }, el('td', {}, route.name),
          el('td', { class: 'number' }, count(allowed)), el('td', { class: 'number' }, count(refused)),
          el('td', { class: 'number' }, share));
      })
      : [emptyRow(4, 'no route has a rate limit')]));

    const reasons = Object.entries(status.auth_failures);
    document.getElementById('auth-failure-rows').replaceChildren(...(reasons.length
      ? reasons.map(([reason, n]) => el('tr', {}, el('td', {}, reason), el('td', { class: 'number' }, count(n))))
      : [emptyRow(2, 'none')]));

    const redis = status.redis;
    document.getElementById('redis-state').replaceChildren(...(redis.configured
      ? [badge(redis.connected ? 'connected' : 'disconnected', redis.connected ? 'redis-connected' : 'redis-disconnected'),
        ` ${redis.required ? 'required for readiness' : 'limits fail over when it is away'}; `
          + `${count(redis.backend_errors)} failed calls`]
      : ['not configured: rate limits are counted per instance']));

    const config = status.config;
    document.getElementById('config-state').replaceChildren(
      'version ', el('strong', {}, String(config.version)), ', loaded at ' + clock(config.loaded_at_unix_ms));
    document.getElementById('reload-rows').replaceChildren(...(config.reloads.length
      ? config.reloads.map((reload) => el('tr', { 'data-result': reload.result },
        el('td', {}, clock(reload.at_unix_ms)),
        el('td', {}, badge(reload.result, 'result-' + reload.result)),
        el('td', { class: 'number' }, reload.version === null ? dash : String(reload.version)),
        el('td', {}, reload.error ? el('span', { class: 'error-line' }, reload.error) : dash)))
      : [emptyRow(4, 'no reload since the gateway started')]));
  }

  function showState(kind, text) {
    const node = document.getElementById('state');
    node.className = 'state state-' + kind;
    node.textContent = text;
  }

  async function refresh() {
    try {
      const response = await fetch('/api/status', { cache: 'no-store', credentials: 'same-origin' });
      if (!response.ok) {
        showState('error', `the gateway answered ${response.status}`
          + (response.status === 401 ? ': this admin listener needs its bearer token' : ''));
        return;
      }
      render(await response.json());
      showState('ok', 'updated ' + new Date().toLocaleTimeString());
    } catch (error) {
      showState('error', 'cannot read the status: ' + error.message);
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh();
})();
