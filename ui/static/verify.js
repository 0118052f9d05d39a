// verify.js checks, in the browser, that a record's exact bytes are in a
// log whose checkpoint is signed by a pinned Ed25519 key. It trusts only
// WebCrypto and the math: RFC 6962 hashing, the inclusion path of
// golang.org/x/mod/sumdb/tlog's CheckRecord, and the C2SP signed-note
// format. Every failure says which step failed.
'use strict';

window.trailVerify = (() => {
  const enc = new TextEncoder();

  class VerifyError extends Error {}
  const fail = (msg) => { throw new VerifyError(msg); };

  function b64decode(s) {
    let bin;
    try { bin = atob(s); } catch { return null; }
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  function b64encode(b) { return btoa(String.fromCharCode(...b)); }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  async function sha256(b) { return new Uint8Array(await crypto.subtle.digest('SHA-256', b)); }

  // leafHash is RFC 6962's SHA-256(0x00 || bytes): tlog.RecordHash.
  const leafHash = (bytes) => sha256(concat(new Uint8Array([0]), bytes));
  // nodeHash is RFC 6962's SHA-256(0x01 || left || right): tlog.NodeHash.
  const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

  // maxpow2 returns the largest power of two k with k < n (n > 1).
  function maxpow2(n) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  // runRecordProof is tlog's: the root of the tree [lo, hi) computed from
  // the leaf n's hash and the proof p (siblings, innermost first).
  async function runRecordProof(p, lo, hi, n, leaf) {
    if (lo + 1 === hi) {
      if (p.length !== 0) fail(`the inclusion proof has ${p.length} hashes too many`);
      return leaf;
    }
    if (p.length === 0) fail('the inclusion proof is too short for the tree size');
    const k = maxpow2(hi - lo);
    const last = p[p.length - 1];
    if (n < lo + k) return nodeHash(await runRecordProof(p.slice(0, -1), lo, lo + k, n, leaf), last);
    return nodeHash(last, await runRecordProof(p.slice(0, -1), lo + k, hi, n, leaf));
  }

  // checkRecord is tlog.CheckRecord: it fails unless the proof leads from
  // leaf n to the root of the tree of size t.
  async function checkRecord(p, t, root, n, leaf) {
    if (!(t > 0 && n >= 0 && n < t && Number.isSafeInteger(t))) fail(`record seq ${n} cannot be in a tree of size ${t}`);
    const got = await runRecordProof(p, 0, t, n, leaf);
    if (!equal(got, root)) {
      fail(`the inclusion path from this record's leaf hash leads to root ${b64encode(got)}, but the signed checkpoint's root is ${b64encode(root)}`);
    }
  }

  // parseVerifier reads a note verifier key "<name>+<hex hash>+<base64(0x01 || key)>".
  async function parseVerifier(vkey) {
    // The name holds no '+', but the base64 key may.
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(vkey.trim());
    if (!m) fail('the verifier key is not of the form name+hash+key');
    const [, name, hash] = m;
    const raw = b64decode(m[3]);
    if (!raw || raw.length !== 33 || raw[0] !== 1) fail('the verifier key is not an Ed25519 note key (algorithm byte 0x01, 32-byte key)');
    // The key hash is the first 4 bytes of SHA-256(name + "\n" + 0x01 || key).
    const h = await sha256(concat(enc.encode(name + '\n'), raw));
    const want = Array.from(h.slice(0, 4), (x) => x.toString(16).padStart(2, '0')).join('');
    if (want !== hash) fail(`the verifier key's hash ${hash} does not match its key (${want})`);
    let key;
    try {
      key = await crypto.subtle.importKey('raw', raw.slice(1), { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      fail(`this browser cannot import an Ed25519 key with WebCrypto (${e.message})`);
    }
    return { name, hash: h.slice(0, 4), key };
  }

  // openNote checks a signed note's signature by v and returns its
  // checkpoint: origin, size and root.
  async function openNote(note, v) {
    const i = note.lastIndexOf('\n\n');
    if (i < 0) fail('the checkpoint is not a signed note (no blank line before its signatures)');
    const text = note.slice(0, i + 1);
    let sig = null;
    for (const line of note.slice(i + 2).split('\n')) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== v.name) continue;
      const b = b64decode(m[2]);
      if (b && b.length === 68 && equal(b.slice(0, 4), v.hash)) sig = b.slice(4);
    }
    if (!sig) fail(`the checkpoint carries no signature by the key ${v.name}`);
    const ok = await crypto.subtle.verify({ name: 'Ed25519' }, v.key, sig, enc.encode(text));
    if (!ok) fail(`the checkpoint's signature by ${v.name} does not verify: the note was altered or signed by another key`);
    const lines = text.split('\n');
    const size = Number(lines[1]);
    const root = b64decode(lines[2] || '');
    if (lines.length < 4 || !/^\d+$/.test(lines[1]) || !root || root.length !== 32) fail('the checkpoint body is not origin, size and root lines');
    return { origin: lines[0], size, root };
  }

  // verify checks a record's bytes against its proof object (GET
  // /logs/{id}/proof) and a verifier key. It returns {ok: true, ...} or
  // {ok: false, reason}.
  async function verify(bytes, proof, vkey) {
    try {
      if (!window.crypto || !crypto.subtle) fail('WebCrypto is unavailable: the page must be served over HTTPS or from loopback');
      const leaf = await leafHash(bytes);
      const v = await parseVerifier(vkey);
      const cp = await openNote(proof.checkpoint, v);
      if (cp.size !== proof.size) fail(`the proof is for a tree of ${proof.size} records, but the signed checkpoint has ${cp.size}`);
      const path = (proof.proof || []).map((h) => {
        const b = b64decode(h);
        if (!b || b.length !== 32) fail(`the inclusion proof holds a malformed hash ${JSON.stringify(h)}`);
        return b;
      });
      const served = b64decode(proof.leaf_hash || '');
      if (served && !equal(served, leaf)) {
        fail(`the leaf hash of the bytes shown (${b64encode(leaf)}) is not the one the server logged (${proof.leaf_hash}): the stored record was changed after it was logged`);
      }
      await checkRecord(path, cp.size, cp.root, proof.seq, leaf);
      return { ok: true, size: cp.size, root: b64encode(cp.root), origin: cp.origin, leaf: b64encode(leaf) };
    } catch (e) {
      if (e instanceof VerifyError) return { ok: false, reason: e.message };
      return { ok: false, reason: `verification failed: ${e.message}` };
    }
  }

  return { verify, leafHash: async (b) => b64encode(await leafHash(b)) };
})();
