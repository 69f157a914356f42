// A reply streaming into a notebook cell (chatmagic._replyview): Python sends the reply
// whole ({n, html}) when this view says hello or could not verify a patch, then patches
// ({n, a} or {n, b, k, t}; s: a new status line) that applyPatch (above) checks before
// anything is shown.
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "chatmagic-reply";
  el.appendChild(root);
  let state = null; // no verified copy of the tail: wait for the reply whole
  let tail = null;
  let line = null;
  let asked = false; // a resync was sent and its answer has not come
  // the Run / Deny / Always buttons of tool calls that wait (chatmagic._toolcards.ask_html)
  const ask = document.createElement("div");
  ask.className = "cm-asks";
  el.appendChild(ask);
  ask.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-answer]");
    const row = button && button.closest("[data-ask]");
    if (!row) return;
    row.querySelectorAll("button").forEach((b) => (b.disabled = true));
    model.send({ type: "answer", id: row.dataset.ask, choice: button.dataset.answer });
  });
  const onMsg = (msg) => {
    if (msg.ask !== undefined) {
      ask.innerHTML = msg.ask; // escaped in Python (chatmagic._toolcards)
      return;
    }
    if (msg.html !== undefined) {
      root.innerHTML = msg.html; // sanitized in Python (chatmagic.render)
      tail = root.querySelector(":scope > .cm-tail");
      line = root.querySelector(":scope > .cm-line");
      state = { seq: msg.n, tail: null, crc: 0 };
      asked = false;
      return;
    }
    const parts = state && applyPatch(state, msg);
    if (!parts) {
      // what is shown stays; Python sends the reply whole (asked once until it comes)
      if (state !== null || !asked) model.send({ type: "resync" });
      state = null;
      asked = true;
      return;
    }
    if (parts.blocks !== undefined) tail.insertAdjacentHTML("beforebegin", parts.blocks);
    if (parts.tail !== undefined) tail.innerHTML = parts.tail;
    if (msg.s !== undefined) line.innerHTML = msg.s;
  };
  model.on("msg:custom", onMsg);
  model.send({ type: "hello" });
  return () => model.off("msg:custom", onMsg);
}
export default { render };
