// Shared by every streaming view (chatmagic._stream): a patch is applied only when it
// follows the last one (seq), applies to the tail held (base: length, CRC-32) and gives
// what Python computed (each result's CRC-32). Otherwise nothing is assembled: the caller
// keeps what it shows and asks Python for the whole item.
const CRC_TABLE = new Int32Array(256).map((_, n) => {
  for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
  return n;
});
function crc32(s) {
  let c = -1; // over the UTF-16-LE bytes, as Python's zlib.crc32(s.encode("utf-16-le"))
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    c = CRC_TABLE[(c ^ u) & 255] ^ (c >>> 8);
    c = CRC_TABLE[(c ^ (u >>> 8)) & 255] ^ (c >>> 8);
  }
  return (c ^ -1) >>> 0;
}
// state: {seq, tail: the tail's HTML as sent (null: not held), crc}; returns {blocks?, tail?}
// (verified strings) and moves state on, or returns null and leaves state alone
function applyPatch(state, msg) {
  if (typeof msg.n !== "number" || msg.n !== state.seq + 1) return null;
  const held = state.tail;
  const base = msg.b;
  const baseOk = held !== null && Array.isArray(base) && held.length === base[0] && state.crc === base[1];
  const out = {};
  for (const [key, name] of [["k", "blocks"], ["t", "tail"]]) {
    const part = msg[key];
    if (part === undefined) continue;
    const [keep, html, crc] = part;
    if (keep > 0 && !baseOk) return null;
    const value = (keep > 0 ? held.slice(0, keep) : "") + html;
    if (crc32(value) !== crc) return null;
    out[name] = value;
  }
  state.seq = msg.n;
  if (out.tail !== undefined) {
    state.tail = out.tail;
    state.crc = msg.t[2];
  }
  return out;
}
