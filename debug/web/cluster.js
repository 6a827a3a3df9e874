// leasehold cluster page: draws /debug/cluster.json and keeps it live
// through server-sent events (cluster/events), falling back to polling.
// Countdowns run on this page's monotonic clock from when a view arrived,
// minus the age of the tree they came from, so no wall clock matters.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  let view = null;
  let receivedAt = 0;
  const countdowns = []; // [element, safety ms at the view, ttl ms]

  // Read by tests: a reload resets loadedAt; views counts updates.
  window.leasehold = { loadedAt: Date.now() + Math.random(), views: 0 };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const age = leaseholdLive.age;

  function time(iso) {
    if (!iso) return '';
    return iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC');
  }

  function countdown(e, safetyMs, ttlMs) {
    countdowns.push([e, safetyMs, ttlMs]);
  }

  function elections(v) {
    const box = $('elections');
    box.textContent = '';
    for (const e of v.elections) {
      const c = el('div', 'election');
      c.dataset.prefix = e.prefix;
      c.dataset.leader = e.leader || '';
      c.dataset.token = e.token ? String(e.token) : '';
      c.append(el('div', 'prefix', 'election ' + e.prefix));
      const who = el('div', 'who');
      if (e.leader) {
        who.append(el('span', 'lid', e.leader), el('span', 'badge leader', '★ LEADER · token ' + e.token));
      } else {
        who.append(el('span', 'alert', 'no leader'));
      }
      c.append(who);
      if (e.leader && e.safety_left_ms >= 0) {
        const s = el('div', 'safe');
        countdown(s, e.safety_left_ms - (e.age_ms || 0), 0);
        c.append(s);
      }
      c.append(el('div', 'cands', e.candidates.length ? 'candidates: ' + e.candidates.join(', ') : 'no other candidate'));
      box.append(c);
    }
  }

  function nodes(v) {
    const body = $('nodes');
    body.textContent = '';
    for (const n of v.nodes) {
      const tr = el('tr', 'node');
      tr.dataset.node = n.id;
      tr.dataset.status = n.status;
      tr.dataset.leads = (n.leads || []).join(' ');
      const st = el('span', 'status', n.status.replace('_', ' '));
      const leads = el('td');
      if (n.leads && n.leads.length) leads.append(el('span', 'badge leader', '★ ' + n.leads.join(', ')));
      const lease = el('td', 'mono');
      if (n.status === 'gone') lease.textContent = 'gone for ' + age(Date.parse(v.at) - Date.parse(n.gone_since));
      else if (n.lease_ttl_ms) lease.textContent = n.lease_id + ' · etcd ttl ' + (n.lease_ttl_ms / 1000) + ' s';
      else lease.textContent = n.lease_id || '';
      const ep = el('td', 'mono');
      if (n.debug_url) {
        const a = el('a', '', n.debug_url);
        a.href = n.debug_url + '/debug/tree';
        a.rel = 'noreferrer';
        ep.append(a);
      }
      const err = el('td', 'err', n.error || '');
      err.title = n.error || '';
      const started = n.started ? age(Date.parse(v.at) - Date.parse(n.started)) : '';
      const tdStatus = el('td');
      tdStatus.append(st);
      tr.append(el('td', 'id', n.id), tdStatus, leads, lease, el('td', 'mono', n.version || ''), el('td', '', started), ep, err);
      body.append(tr);
    }
  }

  function tasks(v) {
    const list = v.tasks || [];
    $('tasks-section').hidden = !list.length && !v.tasks_error;
    $('tasks-error').hidden = !v.tasks_error;
    $('tasks-error').textContent = v.tasks_error || '';
    const body = $('tasks');
    body.textContent = '';
    for (const t of list) {
      const tr = el('tr');
      tr.dataset.task = t.name;
      const r = t.last_run;
      const state = el('td', 'run');
      if (r) {
        state.dataset.state = r.state;
        state.textContent = r.state + (r.runner ? ' on ' + r.runner : '') + (r.attempt > 1 ? ' (attempt ' + r.attempt + ')' : '');
      }
      const fails = el('td', 'err');
      if (t.failures && t.failures.length) {
        const f = t.failures[0];
        fails.textContent = t.failures.length + ' · last ' + time(f.slot) + ' ' + f.state + (f.reason ? ': ' + f.reason : '');
        fails.title = t.failures.map((f) => time(f.slot) + ' ' + f.state + ' exit ' + (f.exit_code || 0) + (f.reason ? ': ' + f.reason : '')).join('\n');
      }
      tr.append(el('td', 'id', t.name), el('td', 'mono', t.schedule || ''), el('td', 'mono', time(t.last_slot)), state, el('td', 'mono', time(t.next_slot)), fails);
      body.append(tr);
    }
  }

  function trees(v) {
    const box = $('trees');
    box.textContent = '';
    for (const n of v.nodes) {
      if (!n.tree) continue;
      const c = el('div', 'ctree');
      c.dataset.node = n.id;
      c.dataset.status = n.status;
      c.append(el('div', 'title', n.id));
      (function walk(t, depth) {
        const row = el('div', 'tn');
        row.dataset.path = t.path;
        row.dataset.state = t.state;
        row.style.paddingLeft = (depth * 16) + 'px';
        row.append(el('span', 'nm', (depth ? '└ ' : '') + t.name), el('span', 'stt', t.state));
        if (t.role === 'leader') row.append(el('span', 'badge leader', '★ token ' + t.token));
        else if (t.role === 'candidate') row.append(el('span', 'badge candidate', 'leader ' + (t.leader || 'none')));
        if ((t.kind === 'lease' || t.kind === 'election') && t.held) {
          const s = el('span', 'safe');
          countdown(s, t.held_until_ms - (n.age_ms || 0), t.ttl_ms);
          row.append(s);
        }
        if (t.restarts) row.append(el('span', 'restarts', '↻ ' + t.restarts));
        if (t.last_error) row.title = t.last_error;
        c.append(row);
        (t.children || []).forEach((ch) => walk(ch, depth + 1));
      })(n.tree.tree, 0);
      box.append(c);
    }
  }

  function apply(v) {
    view = v;
    receivedAt = performance.now();
    window.leasehold.views++;
    countdowns.length = 0;
    $('empty').hidden = true;
    $('from').textContent = v.from;
    $('etcd-error').hidden = !v.etcd_error;
    $('etcd-error').textContent = v.etcd_error || '';
    elections(v);
    nodes(v);
    tasks(v);
    trees(v);
    const count = {};
    for (const n of v.nodes) count[n.status] = (count[n.status] || 0) + 1;
    const sum = $('summary');
    sum.textContent = '';
    sum.append(el('span', '', (count.up || 0) + '/' + v.nodes.length + ' nodes up'));
    for (const [k, label] of [['unreachable', 'unreachable'], ['gone', 'gone'], ['no_endpoint', 'without endpoint']]) {
      if (count[k]) sum.append(' ', el('span', k === 'no_endpoint' ? '' : 'bad', '· ' + count[k] + ' ' + label));
    }
    const leaders = v.elections.filter((e) => e.leader).map((e) => e.leader);
    document.title = 'cluster' + (leaders.length ? ' ★ ' + leaders.join(', ') : '') + ' · leasehold';
    tick();
  }

  function tick() {
    if (!view) return;
    const elapsed = performance.now() - receivedAt;
    for (const [e, safety, ttl] of countdowns) {
      const left = Math.max(0, safety - elapsed);
      e.textContent = (left / 1000).toFixed(1) + ' s safe' + (ttl ? ' / ' + ttl / 1000 + ' s' : '');
    }
    $('at').textContent = 'updated ' + age(elapsed) + ' ago';
    feed.freshness(elapsed);
  }

  const feed = leaseholdLive.feed({ json: 'cluster.json', events: 'cluster/events', every: 2000, apply });
  setInterval(tick, 100);
})();
