// app.js is the viewer: sign-in, search, the table, the histogram, record
// detail, verification (verify.js), live tail and export. It calls only
// its own server's API; filter state lives in the address bar with the
// parameter names of GET /logs, and the credential never does.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const FILTERS = ['tenant', 'actor', 'actor_type', 'action', 'target', 'target_type', 'source', 'outcome', 'since', 'until', 'order'];
  const PAGE = 100;
  const HIST_MAX = 5000; // events the histogram reads at most
  const PRESETS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
  const st = { gen: 0, next: null, done: true, loading: false, tail: null, detailID: null, opener: null };

  // api calls the server with the session cookie, or with the credential
  // kept in sessionStorage where the browser refused the Secure cookie.
  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers);
    const cred = sessionStorage.getItem('trail.credential');
    if (cred && !headers.Authorization) headers.Authorization = 'Bearer ' + cred;
    if (opts.method && opts.method !== 'GET') headers['X-Trail-CSRF'] = '1';
    return fetch(path, Object.assign({}, opts, { headers, credentials: 'same-origin', cache: 'no-store' }));
  }

  async function problem(r) {
    try {
      const p = await r.json();
      return p.detail || p.title || `HTTP ${r.status}`;
    } catch {
      return `HTTP ${r.status}`;
    }
  }

  // --- sign-in ---

  async function start() {
    const u = new URL(location.href);
    const token = u.searchParams.get('token');
    if (token !== null) {
      // An embedding application hands a token once: out of the address
      // bar and history at once, then into the cookie.
      u.searchParams.delete('token');
      history.replaceState(null, '', u.pathname + u.search + u.hash);
      if (await signIn(token)) return;
    }
    const r = await api('/whoami');
    if (r.ok) return showApp(await r.json());
    showSignin(r.status === 401 ? '' : await problem(r));
  }

  async function signIn(cred) {
    cred = cred.trim().replace(/^Bearer\s+/i, '');
    const r = await api('/session', { method: 'POST', headers: { Authorization: 'Bearer ' + cred } });
    if (!r.ok) {
      showSignin(await problem(r));
      return false;
    }
    const who = await r.json();
    // Check that the cookie took; over plain HTTP off loopback the browser
    // drops a Secure cookie, and the tab keeps the credential instead.
    const check = await fetch('/whoami', { credentials: 'same-origin', cache: 'no-store' });
    if (!check.ok) sessionStorage.setItem('trail.credential', cred);
    showApp(who);
    return true;
  }

  async function signOut() {
    sessionStorage.removeItem('trail.credential');
    await api('/session', { method: 'DELETE' });
    stopTail();
    location.replace('/ui/');
  }

  function showSignin(msg) {
    $('app').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = msg || '';
    $('cred').focus();
  }

  function showApp(who) {
    $('signin').hidden = true;
    $('app').hidden = false;
    const who2 = who.open ? 'authentication off: all tenants'
      : `${who.viewer ? 'viewer token' : 'key ' + who.key_id} · ${who.tenant ? 'tenant ' + who.tenant : 'all tenants'}`;
    $('who').textContent = who2;
    $('signout').hidden = !!who.open;
    if (who.tenant) {
      // The server narrows every query to the bound tenant already; the
      // link stays shareable with any credential of that tenant.
      $('f-tenant').value = '';
      $('f-tenant').placeholder = who.tenant;
      $('f-tenant').readOnly = true;
    }
    loadKey();
    readURL();
    search();
  }

  // --- filters and the address bar ---

  function params() {
    const q = new URLSearchParams();
    for (const name of FILTERS) {
      const v = $('f-' + name).value.trim();
      if (v) q.set(name, v);
    }
    return q;
  }

  function readURL() {
    const q = new URLSearchParams(location.search);
    for (const name of FILTERS) {
      const el = $('f-' + name);
      if (!el.readOnly) el.value = q.get(name) || '';
    }
  }

  function submit() {
    const q = params();
    const s = q.toString();
    if (s !== location.search.slice(1)) history.pushState(null, '', '/ui/' + (s ? '?' + s : ''));
    search();
  }

  function setFilter(name, value) {
    $('f-' + name).value = value;
    submit();
  }

  function preset(p) {
    $('f-until').value = '';
    $('f-since').value = p === 'all' ? '' : new Date(Date.now() - PRESETS[p]).toISOString();
    submit();
  }

  // --- results ---

  function search() {
    st.gen++;
    st.next = null;
    st.done = false;
    st.loading = false;
    $('rows').replaceChildren();
    const q = params();
    $('export-ndjson').href = '/logs?' + withParam(q, 'format', 'ndjson');
    $('export-csv').href = '/logs?' + withParam(q, 'format', 'csv');
    loadPage();
    histogram(st.gen);
    if ($('tail').checked) startTail();
  }

  function withParam(q, k, v) {
    const c = new URLSearchParams(q);
    c.set(k, v);
    return c.toString();
  }

  async function loadPage() {
    if (st.loading || st.done) return;
    st.loading = true;
    const gen = st.gen;
    const q = params();
    q.set('limit', String(PAGE));
    if (st.next) q.set('cursor', st.next);
    $('status').textContent = 'Loading…';
    let page;
    try {
      const r = await api('/logs?' + q);
      page = r.ok ? await r.json() : { error: await problem(r) };
    } catch (e) {
      page = { error: e.message };
    }
    if (gen !== st.gen) return;
    st.loading = false;
    if (page.error) {
      st.done = true;
      $('status').textContent = 'Search failed: ' + page.error;
      return;
    }
    const rows = $('rows');
    for (const ev of page.events) rows.append(row(ev));
    st.next = page.next;
    st.done = !page.next;
    $('more').hidden = st.done;
    const n = rows.children.length;
    $('status').textContent = `${n} event${n === 1 ? '' : 's'}${st.done ? '' : ' so far; scroll for more'}`;
    if (!st.done && nearBottom()) loadPage();
  }

  function nearBottom() {
    const r = $('sentinel').getBoundingClientRect();
    return r.top < window.innerHeight + 200;
  }

  function cell(text) {
    const td = document.createElement('td');
    td.textContent = text || '';
    return td;
  }

  function filterCell(name, value) {
    const td = document.createElement('td');
    if (!value) return td;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link';
    b.textContent = value;
    b.title = `Filter by ${name} ${value}`;
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      setFilter(name, value);
    });
    td.append(b);
    return td;
  }

  function row(ev) {
    const tr = document.createElement('tr');
    tr.tabIndex = 0;
    tr.dataset.id = ev.id;
    tr.className = 'outcome-' + ev.outcome;
    const t = ev.target || {};
    const time = cell(fmtTime(ev.time));
    time.title = ev.time;
    const vb = document.createElement('button');
    vb.type = 'button';
    vb.className = 'verify';
    vb.textContent = 'Verify';
    vb.setAttribute('aria-label', 'Verify record ' + ev.id);
    const vtd = document.createElement('td');
    const out = document.createElement('span');
    out.className = 'vresult';
    out.setAttribute('role', 'status');
    vtd.append(vb, out);
    vb.addEventListener('click', async (e) => {
      e.stopPropagation();
      await verifyInto(ev.id, out, true);
    });
    tr.append(time, filterCell('actor', ev.actor && ev.actor.id), filterCell('action', ev.action),
      filterCell('target', t.id), cell(ev.outcome), cell(ev.source && ev.source.service), cell(ev.tenant), vtd);
    tr.addEventListener('click', () => openDetail(ev.id, tr));
    tr.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target === tr) openDetail(ev.id, tr);
    });
    return tr;
  }

  function fmtTime(s) {
    const d = new Date(s);
    return isNaN(d) ? s : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // --- histogram ---

  // histogram draws matching events over time as SVG bars, from at most
  // HIST_MAX events of the current filter (the caption says when capped).
  async function histogram(gen) {
    const times = [];
    let cursor = null;
    let capped = false;
    while (times.length < HIST_MAX) {
      const q = params();
      q.set('limit', '1000');
      if (cursor) q.set('cursor', cursor);
      const r = await api('/logs?' + q);
      if (gen !== st.gen || !r.ok) return;
      const page = await r.json();
      for (const ev of page.events) times.push(Date.parse(ev.time));
      cursor = page.next;
      if (!cursor) break;
      capped = times.length >= HIST_MAX;
    }
    if (gen !== st.gen) return;
    drawHistogram(times, capped);
  }

  function drawHistogram(times, capped) {
    const svg = $('hist');
    const NS = 'http://www.w3.org/2000/svg';
    svg.replaceChildren();
    const W = Math.max(300, Math.round(svg.getBoundingClientRect().width) || 800), H = 80, N = 60;
    svg.setAttribute('viewBox', `0 0 ${W} ${H + 16}`);
    if (!times.length) {
      $('hist-caption').textContent = 'No matching events.';
      return;
    }
    let lo = Math.min(...times), hi = Math.max(...times);
    const since = Date.parse($('f-since').value), until = Date.parse($('f-until').value);
    if (!isNaN(since)) lo = Math.min(lo, since);
    hi = isNaN(until) ? Math.max(hi, $('f-since').value ? Date.now() : hi) : Math.max(hi, until);
    const span = Math.max(hi - lo, 1000);
    const counts = new Array(N).fill(0);
    for (const t of times) counts[Math.min(N - 1, Math.floor(((t - lo) / span) * N))]++;
    const top = Math.max(...counts);
    counts.forEach((c, i) => {
      if (!c) return;
      const h = Math.max(1, (c / top) * H);
      const r = document.createElementNS(NS, 'rect');
      r.setAttribute('x', String((i * W) / N + 1));
      r.setAttribute('y', String(H - h));
      r.setAttribute('width', String(W / N - 2));
      r.setAttribute('height', String(h));
      const title = document.createElementNS(NS, 'title');
      title.textContent = `${c} from ${new Date(lo + (i * span) / N).toISOString()}`;
      r.append(title);
      svg.append(r);
    });
    for (const [x, t, anchor] of [[0, lo, 'start'], [W, lo + span, 'end']]) {
      const label = document.createElementNS(NS, 'text');
      label.setAttribute('x', String(x));
      label.setAttribute('y', String(H + 13));
      label.setAttribute('text-anchor', anchor);
      label.textContent = fmtTime(new Date(t).toISOString());
      svg.append(label);
    }
    $('hist-caption').textContent = `${times.length}${capped ? '+ (the first ' + HIST_MAX + ')' : ''} matching events over time; tallest bar ${top}.`;
  }

  // --- record detail ---

  async function fetchBytes(id) {
    const r = await api('/logs/' + encodeURIComponent(id));
    if (!r.ok) throw new Error(await problem(r));
    return new Uint8Array(await r.arrayBuffer());
  }

  async function openDetail(id, opener) {
    st.detailID = id;
    st.opener = opener || null;
    const d = $('detail');
    $('verify-result').textContent = '';
    delete $('verify-result').dataset.state;
    let bytes;
    try {
      bytes = await fetchBytes(id);
    } catch (e) {
      $('raw').textContent = 'Cannot read the record: ' + e.message;
      d.hidden = false;
      return;
    }
    const raw = new TextDecoder().decode(bytes);
    const rec = JSON.parse(raw);
    $('raw').textContent = JSON.stringify(rec, null, 2);
    $('raw').dataset.raw = raw;
    const leaf = await window.trailVerify.leafHash(bytes);
    const dl = $('receipt');
    dl.replaceChildren();
    for (const [k, v] of [['id', rec.id], ['log', rec.log], ['seq', rec.seq], ['received_at', rec.received_at],
      ['key_id', rec.key_id || '(none: written with authentication off)'], ['leaf hash', leaf]]) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = String(v);
      dl.append(dt, dd);
    }
    $('copy-id').dataset.copy = rec.id;
    $('copy-hash').dataset.copy = leaf;
    $('copy-raw').dataset.copy = raw;
    d.hidden = false;
    $('detail-verify').focus();
  }

  function closeDetail() {
    $('detail').hidden = true;
    st.detailID = null;
    if (st.opener && st.opener.isConnected) st.opener.focus();
  }

  async function copy(e) {
    const b = e.currentTarget;
    try {
      await navigator.clipboard.writeText(b.dataset.copy || '');
      flash(b, 'Copied');
    } catch {
      flash(b, 'Copy blocked');
    }
  }

  function flash(b, text) {
    const old = b.dataset.label || b.textContent;
    b.dataset.label = old;
    b.textContent = text;
    setTimeout(() => { b.textContent = old; }, 1200);
  }

  // --- verification ---

  function loadKey() {
    const k = localStorage.getItem('trail.verifierKey') || '';
    $('vkey').value = k;
    $('vkey-state').textContent = k ? 'Pinned.' : 'No key pinned: Verify uses the server\'s own key, with a warning.';
  }

  function pinKey() {
    const k = $('vkey').value.trim();
    if (k) localStorage.setItem('trail.verifierKey', k);
    else localStorage.removeItem('trail.verifierKey');
    loadKey();
  }

  // verifyInto verifies a record and writes ✓ or ✗ into out. A record no
  // checkpoint covers yet is retried every 2 s.
  async function verifyInto(id, out, short) {
    out.dataset.state = 'pending';
    out.textContent = 'Verifying…';
    let key = localStorage.getItem('trail.verifierKey');
    let warning = '';
    if (!key) {
      const r = await api('/checkpoint/key');
      if (!r.ok) return show(out, { ok: false, reason: 'no pinned verifier key, and the server publishes none: ' + await problem(r) }, short);
      key = (await r.text()).trim();
      warning = 'Warning: checked against the key the server itself sent, which proves nothing about the server. Pin the log\'s key (Verifier key) to make this check independent.';
    }
    let bytes;
    try {
      bytes = await fetchBytes(id);
    } catch (e) {
      return show(out, { ok: false, reason: 'cannot read the record: ' + e.message }, short);
    }
    const r = await api('/logs/' + encodeURIComponent(id) + '/proof');
    if (!r.ok) {
      let p = {};
      try { p = await r.json(); } catch { /* not a problem document */ }
      if (p.code === 'not_covered') {
        out.dataset.state = 'pending';
        out.textContent = 'Not yet covered by a signed checkpoint; retrying in 2 s…';
        setTimeout(() => { if (out.isConnected) verifyInto(id, out, short); }, 2000);
        return;
      }
      return show(out, { ok: false, reason: 'the server gave no inclusion proof: ' + (p.detail || 'HTTP ' + r.status) }, short);
    }
    const res = await window.trailVerify.verify(bytes, await r.json(), key);
    res.warning = warning;
    res.checked = new Date().toISOString();
    show(out, res, short);
  }

  function show(out, res, short) {
    out.dataset.state = res.ok ? 'ok' : 'bad';
    if (res.ok) {
      const long = `✓ Verified: in ${res.origin}, tree size ${res.size}, root ${res.root}, checkpoint fetched ${fmtTime(res.checked)}.`;
      out.textContent = short ? '✓' : long;
      out.title = long;
    } else {
      out.textContent = short ? '✗' : '✗ ' + res.reason;
      out.title = '✗ ' + res.reason;
    }
    if (res.warning && !short) {
      const w = document.createElement('p');
      w.className = 'warning';
      w.textContent = res.warning;
      out.append(w);
    }
  }

  // --- live tail (GET /logs/stream, Server-Sent Events) ---

  function startTail() {
    stopTail();
    const q = params();
    q.delete('order');
    const es = new EventSource('/logs/stream?' + q);
    st.tail = es;
    $('tail-state').textContent = 'Connecting…';
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      const rows = $('rows');
      if (rows.querySelector(`tr[data-id="${CSS.escape(ev.id)}"]`)) return;
      const tr = row(ev);
      tr.classList.add('new');
      rows.prepend(tr);
    };
    es.addEventListener('end', (m) => {
      // The server cut the stream (a slow reader, or shutdown); the
      // browser reconnects with Last-Event-ID and misses nothing.
      let detail = '';
      try { detail = JSON.parse(m.data).detail; } catch { /* not a problem */ }
      $('tail-state').textContent = 'Stream ended' + (detail ? ': ' + detail : '') + '; reconnecting…';
    });
    es.onopen = () => { $('tail-state').textContent = 'Live'; };
    es.onerror = () => {
      $('tail-state').textContent = es.readyState === EventSource.CLOSED ? 'Live tail unavailable' : 'Reconnecting…';
    };
  }

  function stopTail() {
    if (st.tail) st.tail.close();
    st.tail = null;
    $('tail-state').textContent = '';
  }

  // --- wiring ---

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-form').addEventListener('submit', (e) => {
      e.preventDefault();
      signIn($('cred').value);
      $('cred').value = '';
    });
    $('signout').addEventListener('click', signOut);
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      submit();
    });
    for (const b of document.querySelectorAll('[data-preset]')) b.addEventListener('click', () => preset(b.dataset.preset));
    $('more').addEventListener('click', loadPage);
    new IntersectionObserver((es) => { if (es.some((e) => e.isIntersecting)) loadPage(); }).observe($('sentinel'));
    window.addEventListener('scroll', () => { if (nearBottom()) loadPage(); }, { passive: true });
    window.addEventListener('popstate', () => { readURL(); search(); });
    $('tail').addEventListener('change', () => ($('tail').checked ? startTail() : stopTail()));
    $('vkey-save').addEventListener('click', pinKey);
    for (const id of ['copy-id', 'copy-hash', 'copy-raw']) $(id).addEventListener('click', copy);
    $('detail-close').addEventListener('click', closeDetail);
    $('detail-verify').addEventListener('click', () => verifyInto(st.detailID, $('verify-result'), false));
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('detail').hidden) closeDetail(); });
    start();
  });
})();
