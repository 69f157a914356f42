// Shared by every streaming view (chatmagic._stream): a patch is applied only when it
// follows the last one (seq) and, when it keeps anything of the tail held, names that tail
// (base: its length and the low 24 bits of its CRC-32). Otherwise nothing is assembled: the caller keeps what it
// shows and asks Python for the whole item.
const CRC_TABLE = new Int32Array(256).map((_, n) => {
  for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
  return n;
});
function crc24(s) {
  let c = -1; // over the UTF-16-LE bytes, as Python's zlib.crc32(s.encode("utf-16-le")) & 0xffffff
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    c = CRC_TABLE[(c ^ u) & 255] ^ (c >>> 8);
    c = CRC_TABLE[(c ^ (u >>> 8)) & 255] ^ (c >>> 8);
  }
  return (c ^ -1) & 0xffffff;
}
// the tail held is the one a patch names: [length, crc]
function holds(state, base) {
  return state.tail !== null && Array.isArray(base) && state.tail.length === base[0] && state.crc === base[1];
}
// the first `keep` units of the tail held, then `html` (keep within what is held)
function spliced(state, keep, html) {
  if (typeof keep !== "number" || typeof html !== "string" || keep < 0) return null;
  if (keep === 0) return html;
  return keep <= state.tail.length ? state.tail.slice(0, keep) + html : null;
}
// state: {seq, tail: the tail's HTML as sent (null: not held), crc}; returns {blocks?, tail?}
// (verified strings) and moves state on, or returns null and leaves state alone
function applyPatch(state, msg) {
  if (typeof msg.n !== "number" || msg.n !== state.seq + 1) return null;
  const out = {};
  if (msg.a !== undefined) {
    // compact: the tail edited near its end ([length, crc, at, cut, html]): `at` units
    // before the end, `cut` units go and `html` comes
    if (!Array.isArray(msg.a) || !holds(state, msg.a)) return null;
    const [length, , at, cut, html] = msg.a;
    if (!Number.isInteger(at) || !Number.isInteger(cut) || cut < 0 || cut > at || at > length) return null;
    out.tail = spliced(state, length - at, html);
    if (out.tail === null) return null;
    out.tail += state.tail.slice(length - at + cut);
  } else {
    const baseOk = holds(state, msg.b);
    for (const [key, name] of [["k", "blocks"], ["t", "tail"]]) {
      const part = msg[key];
      if (part === undefined) continue;
      if (!Array.isArray(part) || (part[0] !== 0 && !baseOk)) return null;
      out[name] = spliced(state, part[0], part[1]);
      if (out[name] === null) return null;
    }
  }
  state.seq = msg.n;
  if (out.tail !== undefined) {
    state.tail = out.tail;
    state.crc = crc24(out.tail);
  }
  return out;
}
