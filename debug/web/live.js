// leasehold debug pages' shared parts: the live feed (server-sent events,
// falling back to polling the JSON while the stream is down, with the
// connection's status in #conn) and the age format. The tree page and the
// cluster page load it before their own script.
'use strict';
window.leaseholdLive = (() => {
  const $ = (id) => document.getElementById(id);

  function age(ms) {
    if (!(ms >= 0)) return '';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function showConn(status, detail) {
    $('conn').dataset.status = status;
    const text = status + (detail ? ': ' + detail : '');
    const t = $('conn-text');
    if (t.textContent !== text) t.textContent = text;
  }

  // feed keeps the page live: apply gets every update of o.json, through
  // o.events while the stream is open, else by polling every o.every ms.
  function feed(o) {
    let es = null;
    let pollTimer = 0;
    let connStatus = 'connecting';
    let connDetail = '';

    function setConn(status, detail) {
      connStatus = status;
      connDetail = detail || '';
      showConn(status, connDetail);
    }

    async function poll() {
      try {
        const r = await fetch(o.json, { cache: 'no-store', credentials: 'same-origin' });
        if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
        o.apply(await r.json());
        if (!(es && es.readyState === EventSource.OPEN)) setConn('polling');
      } catch (err) {
        setConn('disconnected', String(err && err.message || err));
      }
    }

    function startPolling() {
      if (pollTimer) return;
      if (connStatus !== 'disconnected') setConn('polling');
      poll();
      pollTimer = setInterval(poll, o.every);
    }

    function stopPolling() {
      clearInterval(pollTimer);
      pollTimer = 0;
    }

    function connect() {
      if (!window.EventSource) {
        startPolling();
        return;
      }
      es = new EventSource(o.events);
      es.onmessage = (e) => {
        stopPolling();
        setConn('live');
        o.apply(JSON.parse(e.data));
      };
      es.onerror = () => {
        // The browser retries by itself unless the stream was refused
        // (CLOSED); meanwhile, and after a refusal, poll.
        if (es.readyState === EventSource.CLOSED) {
          es = null;
          setTimeout(connect, 10000);
        }
        startPolling();
      };
    }

    connect();
    return {
      // freshness marks the page stale after 5 s without an update, and
      // shows the connection's status.
      freshness(elapsed) {
        const stale = elapsed > 5000;
        document.body.classList.toggle('stale', stale);
        if (stale && connStatus !== 'disconnected') showConn('stale', 'no update for ' + age(elapsed));
        else showConn(connStatus, connDetail);
      },
    };
  }

  return { age, feed };
})();
