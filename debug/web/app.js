// leasehold debug page: draws /debug/tree.json's tree and keeps it live
// through server-sent events (tree/events), falling back to polling
// tree.json. Lease countdowns run locally between snapshots: a lease's
// safety ends held_until_ms after the snapshot's "at", measured on this
// page's monotonic clock from when the snapshot arrived, so the browser's
// wall clock never matters.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const treeEl = $('tree');
  const views = new Map(); // node path -> view
  let receivedAt = 0; // performance.now() when the last snapshot arrived
  let snap = null;

  // Read by tests: a reload resets loadedAt; snapshots counts updates.
  window.leasehold = { loadedAt: Date.now() + Math.random(), snapshots: 0 };

  function el(tag, cls) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }

  const age = leaseholdLive.age;

  function makeView() {
    const v = { root: el('div', 'node'), row: el('div', 'row'), line: el('div', 'line'), children: el('div', 'children') };
    // Left: what the node is; right, aligned across rows: how it is doing.
    for (const [k, cls] of [['kind', 'kind'], ['name', 'name'], ['state', 'state'], ['badge', 'badge'], ['grow', 'grow'],
      ['restarts', 'restarts'], ['meta', 'meta'], ['lease', 'lease'], ['since', 'since']]) {
      v[k] = el('span', cls);
      v.line.append(v[k]);
    }
    // The last error goes on a line of its own, cut to the row's width
    // (the whole text is its tooltip).
    v.error = el('div', 'error');
    v.row.append(v.line, v.error);
    v.bar = el('span', 'bar');
    v.fill = el('span', 'fill');
    v.bar.append(v.fill);
    v.safe = el('span', 'safe');
    v.lease.append(v.bar, v.safe);
    v.root.append(v.row, v.children);
    return v;
  }

  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  function update(v, n) {
    v.n = n;
    const d = v.root.dataset;
    d.path = n.path;
    d.kind = n.kind;
    d.state = n.state;
    d.role = n.role || '';
    d.token = n.token ? String(n.token) : '';
    d.leader = n.leader || '';
    setText(v.kind, n.kind);
    setText(v.name, n.name);
    setText(v.state, n.state);
    const isLease = n.kind === 'lease' || n.kind === 'election';
    v.lease.hidden = !isLease;
    v.bar.hidden = !n.held;
    let badge = '';
    let badgeClass = 'badge';
    if (n.role === 'leader') {
      badge = '★ LEADER · token ' + n.token;
      badgeClass += ' leader';
    } else if (n.role === 'candidate') {
      badge = 'candidate · leader ' + (n.leader || 'none');
      badgeClass += ' candidate';
    } else if (n.token) {
      badge = 'token ' + n.token;
      badgeClass += ' token';
    }
    setText(v.badge, badge);
    v.badge.className = badgeClass;
    v.badge.title = n.prefix ? 'election ' + n.prefix : (n.key ? 'key ' + n.key : '');
    const meta = [];
    if (n.term) meta.push('term ' + n.term);
    if (n.lease_id) meta.push('lease ' + n.lease_id);
    if (n.renewal_failures) meta.push('renewal failures ' + n.renewal_failures);
    // Supervision: a group's strategy and restart budget, a child's restart
    // type when not the default, its shutdown timeout and readiness.
    if (n.strategy && (n.strategy !== 'one_for_one' || n.ordered)) meta.push(n.strategy.replace(/_/g, '-') + (n.ordered ? ', ordered' : ''));
    const it = n.intensity;
    if (it && it.used) meta.push('restarts ' + it.used + '/' + (it.max_restarts < 0 ? '∞' : it.max_restarts) + ' in ' + it.period_ms / 1000 + ' s');
    if (n.restart_type && n.restart_type !== 'permanent') meta.push(n.restart_type);
    if (n.shutdown_ms) meta.push('shutdown ' + n.shutdown_ms / 1000 + ' s');
    if (!n.ready && n.kind === 'service' && n.state === 'running') meta.push('not ready yet');
    setText(v.meta, meta.join(' · '));
    v.meta.title = [n.prefix && 'election prefix ' + n.prefix, n.key && 'key ' + n.key, n.ttl_ms && 'TTL ' + n.ttl_ms / 1000 + ' s',
      isLease && 'renewals ' + (n.renewals || 0) + ', failed ' + (n.renewal_failures || 0)].filter(Boolean).join('\n');
    setText(v.restarts, n.restarts ? '↻ ' + n.restarts + (n.restarts === 1 ? ' restart' : ' restarts') : '');
    // A node that is fine again shows its last error muted: history, not
    // an alarm.
    const err = n.last_error || '';
    setText(v.error, err ? 'last error: ' + err.split('\n')[0] : '');
    v.error.title = err;
  }

  // sync makes container's children the views of nodes, in order, reusing
  // each path's elements so that hovering and tooltips survive updates.
  function sync(container, nodes, seen) {
    nodes.forEach((n, i) => {
      let v = views.get(n.path);
      if (!v) {
        v = makeView();
        views.set(n.path, v);
      }
      seen.add(n.path);
      update(v, n);
      const at = container.children[i];
      if (at !== v.root) container.insertBefore(v.root, at || null);
      sync(v.children, n.children || [], seen);
    });
    while (container.children.length > nodes.length) container.lastElementChild.remove();
  }

  function rootReady(t) {
    if (t.kind === 'lease') return !!t.held;
    if (t.kind === 'election') return t.state === 'leading';
    return t.state === 'running';
  }

  function apply(s) {
    snap = s;
    receivedAt = performance.now();
    window.leasehold.snapshots++;
    const seen = new Set();
    sync(treeEl, [s.tree], seen);
    for (const p of views.keys()) if (!seen.has(p)) views.delete(p);
    $('empty').hidden = true;
    setText($('node'), s.node);
    const ready = rootReady(s.tree);
    setText($('ready'), ready ? 'ready' : 'not ready');
    $('ready').className = 'ready ' + (ready ? 'ok' : 'bad');
    $('ready').title = ready ? 'the root lease is held' : 'the root lease is not held';
    const count = { services: 0, running: 0, failed: 0, backoff: 0, restarts: 0 };
    const leading = [];
    (function walk(n) {
      if (n.kind === 'service') {
        count.services++;
        if (n.state === 'running') count.running++;
        if (n.state === 'failed') count.failed++;
        if (n.state === 'backoff') count.backoff++;
        count.restarts += n.restarts || 0;
      }
      if (n.role === 'leader') leading.push(n.name + ' (token ' + n.token + ')');
      (n.children || []).forEach(walk);
    })(s.tree);
    const sum = $('summary');
    sum.textContent = '';
    const part = (text, cls) => {
      const b = el('span', cls);
      b.textContent = text;
      sum.append(b, ' ');
    };
    part(count.running + '/' + count.services + ' services running');
    if (count.failed) part('· ' + count.failed + ' failed', 'bad');
    if (count.backoff) part('· ' + count.backoff + ' in backoff', 'bad');
    if (count.restarts) part('· ' + count.restarts + ' restarts');
    if (leading.length) part('· leads ' + leading.join(', '));
    document.title = s.node + (leading.length ? ' ★' : '') + ' · leasehold';
    tick();
  }

  // tick advances countdowns and ages between snapshots.
  function tick() {
    if (!snap) return;
    const elapsed = performance.now() - receivedAt;
    const at = Date.parse(snap.at);
    for (const v of views.values()) {
      const n = v.n;
      if (n.kind === 'lease' || n.kind === 'election') {
        if (n.held) {
          const left = Math.max(0, n.held_until_ms - elapsed);
          const ttl = n.ttl_ms || 1;
          const frac = Math.min(1, left / ttl);
          v.fill.style.width = (frac * 100).toFixed(1) + '%';
          v.fill.className = 'fill' + (frac < 0.25 ? ' crit' : frac < 0.5 ? ' warn' : '');
          setText(v.safe, (left / 1000).toFixed(1) + ' s safe');
          v.lease.title = 'safe for ' + (left / 1000).toFixed(1) + ' s of the ' + ttl / 1000 + ' s TTL';
          v.safe.className = 'safe';
        } else {
          setText(v.safe, n.lease_id ? 'not held' : 'no lease');
          v.safe.className = 'safe lost';
        }
      }
      const since = Date.parse(n.since);
      setText(v.since, since > 0 ? 'for ' + age(at - since + elapsed) : '');
    }
    setText($('at'), 'updated ' + age(elapsed) + ' ago');
    $('at').title = 'snapshot taken at ' + snap.at;
    feed.freshness(elapsed);
  }

  const feed = leaseholdLive.feed({ json: 'tree.json', events: 'tree/events', every: 1000, apply });
  setInterval(tick, 100);
})();
