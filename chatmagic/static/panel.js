// The chat panel's browser side (anywidget). It draws nothing of the conversation itself:
// every message arrives from Python as sanitized HTML (chatmagic.present, chatmagic.render)
// and is put in place as it is. What lives here is what must not wait for the kernel:
// the keyboard (Enter sends, Shift+Enter adds a line), the box growing with its text,
// scrolling, and the layout.

const GIVE_UP_MS = 4000; // no transcript by then: say the kernel does not answer
const DRAFT_MS = 400; // the box's text is reported to Python after a pause in typing

function make(tag, cls, props = {}) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key in node && !key.startsWith("aria")) node[key] = value;
    else node.setAttribute(key, value);
  }
  return node;
}

function render({ model, el }) {
  const off = [];
  const on = (name, fn) => {
    model.on(name, fn);
    off.push(() => model.off(name, fn));
  };
  const root = make("div", "chatmagic-panel");
  el.appendChild(root);

  // -- the bar: conversation picker, New chat, provider, model ----------------------
  const bar = make("div", "cm-bar");
  const convField = make("label", "cm-field cm-conv");
  convField.append(make("span", "cm-label", { text: "Chat" }));
  const convSelect = make("select", "cm-select", { title: "The conversation shown (cells use it with -c NAME)" });
  convField.append(convSelect);
  const newButton = make("button", "cm-button cm-new", {
    type: "button",
    text: "New chat",
    title: "Start a new conversation; this one stays in the list",
  });
  const providerField = make("label", "cm-field cm-provider");
  providerField.append(make("span", "cm-label", { text: "Provider" }));
  const providerSelect = make("select", "cm-select");
  providerField.append(providerSelect);
  const modelField = make("div", "cm-field cm-model");
  const modelLabel = make("label", "cm-label", { text: "Model" });
  const combo = make("div", "cm-combo");
  const modelInput = make("input", "cm-input", {
    type: "text",
    spellcheck: false,
    autocomplete: "off",
    role: "combobox",
    "aria-expanded": "false",
    "aria-autocomplete": "list",
    placeholder: "server's default",
  });
  modelInput.id = `cm-model-${Math.random().toString(36).slice(2)}`;
  modelLabel.htmlFor = modelInput.id;
  const listButton = make("button", "cm-button cm-list-button", {
    type: "button",
    text: "▾",
    title: "The models this provider has",
    "aria-label": "Show the models",
  });
  const list = make("div", "cm-list", { role: "listbox" });
  list.hidden = true;
  combo.append(modelInput, listButton, list);
  modelField.append(modelLabel, combo);
  const convGroup = make("div", "cm-group");
  convGroup.append(convField, newButton);
  bar.append(convGroup, providerField, modelField);

  // -- the transcript -----------------------------------------------------------------
  const scroller = make("div", "chatmagic-transcript cm-scroll");
  const earlierButton = make("button", "cm-button cm-earlier", { type: "button" });
  const itemsBox = make("div", "cm-items");
  const empty = make("div", "chatmagic-empty", { text: "Opening the conversation…" });
  scroller.append(earlierButton, itemsBox, empty);

  // -- the box, Send, Stop, status ------------------------------------------------------
  const compose = make("div", "cm-compose");
  const box = make("textarea", "cm-box", {
    rows: 1,
    placeholder: "Message — Enter sends, Shift+Enter adds a line",
    "aria-label": "Message",
  });
  const actions = make("div", "cm-actions");
  const sendButton = make("button", "cm-button cm-primary cm-send", { type: "button", text: "Send", title: "Send (Enter)" });
  const stopButton = make("button", "cm-button cm-stop", { type: "button", text: "Stop", title: "Stop the reply now" });
  actions.append(sendButton, stopButton);
  compose.append(box, actions);
  const status = make("div", "cm-status", { "aria-live": "polite" });
  root.append(bar, scroller, compose, status);

  // -- keeping the controls in step with the model ----------------------------------
  function fillSelect(select, rows, value) {
    const wanted = JSON.stringify(rows);
    if (select.dataset.rows !== wanted) {
      select.replaceChildren(...rows.map(([name, label]) => make("option", "", { value: name, text: label })));
      select.dataset.rows = wanted;
    }
    if (value && !rows.some(([name]) => name === value)) {
      select.append(make("option", "", { value, text: value }));
      select.dataset.rows = "";
    }
    select.value = value;
  }
  const showConversations = () => fillSelect(convSelect, model.get("conversations"), model.get("conversation_name"));
  const showProviders = () => fillSelect(providerSelect, model.get("providers"), model.get("provider"));
  const showModel = () => {
    if (document.activeElement !== modelInput) modelInput.value = model.get("model");
    modelInput.title = model.get("model") || "the server's default model";
  };
  const showBusy = () => {
    const busy = model.get("busy");
    sendButton.disabled = busy;
    stopButton.disabled = !busy;
  };
  const showStatus = () => {
    status.innerHTML = model.get("status"); // escaped in Python (chatmagic.present.status_html)
  };
  const showEarlier = () => {
    const n = model.get("earlier");
    earlierButton.hidden = n <= 0;
    earlierButton.textContent = `Show earlier messages (${n.toLocaleString()} more)`;
  };
  const showHeight = () => {
    scroller.style.maxHeight = model.get("height");
  };
  on("change:conversations", showConversations);
  on("change:conversation_name", showConversations);
  on("change:providers", showProviders);
  on("change:provider", showProviders);
  on("change:model", showModel);
  on("change:busy", () => {
    showBusy();
    // idle, yet a bubble still streams here: the splice that ended it was lost
    if (!model.get("busy") && lives.size && synced) model.send({ type: "hello" });
  });
  on("change:status", showStatus);
  on("change:earlier", showEarlier);
  on("change:height", showHeight);
  on("change:models", () => list.hidden || fillList());
  on("change:models_note", () => list.hidden || fillList());
  showConversations();
  showProviders();
  showModel();
  showBusy();
  showStatus();
  showEarlier();
  showHeight();

  // -- the transcript: splices from Python ---------------------------------------------
  let nodes = []; // one element per item, in order
  let synced = false; // a reset has arrived: splices apply from now on
  const opened = new Map(); // item id -> the Thinking block's state the user chose
  const lives = new Map(); // item id -> a streaming bubble's patch state (_patch.js), or "lost"
  let spliced = 0; // the number of the last splice applied

  function outward(node) {
    for (const a of node.querySelectorAll("a[href]")) a.target = "_blank"; // never leave the notebook
  }
  function itemNode([id, html, seq]) {
    if (seq !== undefined) lives.set(id, { seq, tail: null, crc: 0 });
    const node = make("div", "cm-item");
    node.dataset.id = id;
    node.innerHTML = html; // sanitized in Python (chatmagic.render.markdown_html)
    outward(node);
    const details = node.querySelector("details.chatmagic-thinking");
    if (details && opened.has(id)) details.open = opened.get(id);
    return node;
  }
  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  let stick = true; // stay on the newest text while the user has not scrolled up
  scroller.addEventListener("scroll", () => {
    stick = nearBottom();
  });

  function splice(at, remove, items) {
    // keep what the user reads where it is: the first message after the change is the anchor
    const anchor = nodes[at + remove] || null;
    const anchorTop = anchor ? anchor.offsetTop - scroller.scrollTop : 0;
    const fresh = items.map(itemNode);
    for (const node of nodes.slice(at, at + remove)) {
      node.remove();
      if (!items.some((item) => item[0] === node.dataset.id)) lives.delete(node.dataset.id);
    }
    for (const node of fresh) itemsBox.insertBefore(node, anchor);
    nodes.splice(at, remove, ...fresh);
    empty.hidden = nodes.length > 0;
    empty.textContent = "No messages yet — write one below.";
    if (stick) scroller.scrollTop = scroller.scrollHeight;
    else if (anchor) scroller.scrollTop = anchor.offsetTop - anchorTop;
  }
  // a streaming reply: its bubble changes in place (see chatmagic.panel, "Traffic")
  function live(msg) {
    const node = nodes.find((n) => n.dataset.id === msg.id);
    const bubble = node && node.querySelector(":scope > .chatmagic-msg");
    const tail = bubble && bubble.querySelector(":scope > .cm-tail");
    const state = lives.get(msg.id);
    if (!tail || !state || state === "lost") return;
    // verified first (seq, base, results): a message lost before this one must not make
    // this one splice at the wrong place; what is shown stays, and Python sends it whole
    const parts = applyPatch(state, msg);
    if (parts === null) {
      lives.set(msg.id, "lost");
      model.send({ type: "resync", id: msg.id });
      return;
    }
    if (msg.who !== undefined) bubble.querySelector(":scope > .chatmagic-who").textContent = msg.who;
    if (msg.thinking !== undefined) {
      const old = bubble.querySelector(":scope > details.chatmagic-thinking");
      if (old) old.remove();
      bubble.querySelector(":scope > .chatmagic-who").insertAdjacentHTML("afterend", msg.thinking);
      const details = bubble.querySelector(":scope > details.chatmagic-thinking");
      if (details && opened.has(msg.id)) details.open = opened.get(msg.id);
    }
    if (msg.think !== undefined) {
      const details = bubble.querySelector(":scope > details.chatmagic-thinking");
      const text = details && details.querySelector(".chatmagic-thinking-text");
      if (text) {
        const following = text.scrollHeight - text.scrollTop - text.clientHeight < 20;
        details.querySelector("summary").innerHTML = msg.think[0]; // made in Python (chatmagic.present)
        text.append(msg.think[1]); // reasoning is shown as text
        if (following) text.scrollTop = text.scrollHeight;
      }
    }
    if (parts.blocks !== undefined) {
      // finished Markdown blocks, sanitized in Python: they go above the open tail, once
      const box = document.createElement("template");
      box.innerHTML = parts.blocks;
      outward(box.content);
      tail.before(box.content);
    }
    if (parts.tail !== undefined) {
      tail.innerHTML = parts.tail; // sanitized in Python, verified above
      outward(tail);
    }
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }

  // a tool call's Run / Deny / Always, a budget question's Send anyway / Cancel (made in
  // Python: chatmagic._panel_look); the kernel takes the first answer (chatmagic.pause)
  itemsBox.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-answer]");
    const row = button && button.closest("[data-ask]");
    if (!row) return;
    for (const b of row.querySelectorAll("button")) b.disabled = true;
    model.send({ type: "answer", id: row.dataset.ask, choice: button.dataset.answer });
  });
  // propose_cell's "Insert as cell": a new code cell below the panel's, never run
  itemsBox.addEventListener("click", (event) => {
    const button = event.target.closest("button.cm-insert");
    if (!button) return;
    const code = button.dataset.code;
    const context = model.widget_manager && model.widget_manager.context; // JupyterLab's notebook
    const notebook = context && context.model && context.model.sharedModel;
    if (notebook && typeof notebook.insertCell === "function") {
      const cell = el.closest("[data-windowed-list-index]");
      const at = cell ? Number(cell.dataset.windowedListIndex) + 1 : notebook.cells.length;
      notebook.insertCell(at, { cell_type: "code", source: code, metadata: {} });
      button.textContent = "Inserted below the panel";
    } else if (navigator.clipboard) {
      navigator.clipboard.writeText(code).then(() => (button.textContent = "Copied: paste it into a cell"));
    }
    button.disabled = true;
  });

  itemsBox.addEventListener("click", (event) => {
    const summary = event.target.closest("summary");
    const item = summary && summary.closest(".cm-item");
    if (item) opened.set(item.dataset.id, !summary.parentElement.open);
  });

  on("msg:custom", (msg) => {
    if (msg.type === "reset") {
      synced = true;
      stick = true;
      spliced = msg.n;
      lives.clear();
      splice(0, nodes.length, msg.items);
    } else if (msg.type === "splice" && synced) {
      if (msg.n !== spliced + 1) {
        synced = false; // a splice was lost: the list is not Python's any more
        model.send({ type: "hello" });
        return;
      }
      spliced = msg.n;
      splice(msg.at, msg.remove, msg.items);
    } else if (msg.type === "live" && synced) {
      live(msg);
    } else if (msg.type === "whole" && synced) {
      const at = nodes.findIndex((n) => n.dataset.id === msg.id);
      if (at >= 0) splice(at, 1, [[msg.id, msg.html, msg.n]]);
    } else if (msg.type === "sent") {
      // the box's text was sent from Python (panel.send())
      if (box.value === msg.text) {
        box.value = "";
        grow();
      }
    } else if (msg.type === "give_back") {
      // a message that was not sent comes back, before what was typed since
      const text = msg.text;
      if (!box.value.includes(text)) box.value = box.value.trim() ? `${text}\n${box.value}` : text;
      grow();
      saveDraft();
    }
  });
  const giveUp = setTimeout(() => {
    if (!synced) empty.textContent = "The kernel does not answer: run the cell again to reopen the panel.";
  }, GIVE_UP_MS);
  model.send({ type: "hello" });

  earlierButton.addEventListener("click", () => {
    stick = false;
    model.send({ type: "earlier" });
  });

  // -- the box: Enter sends, Shift+Enter adds a line, it grows with its text -------------
  function grow() {
    box.style.height = "auto";
    const frame = box.offsetHeight - box.clientHeight;
    box.style.height = `${box.scrollHeight + frame}px`; // CSS max-height stops it; then it scrolls
  }
  let draftTimer = null;
  function saveDraft() {
    clearTimeout(draftTimer);
    draftTimer = null;
    if (model.get("draft") !== box.value) {
      model.set("draft", box.value);
      model.save_changes();
    }
  }
  function send() {
    const text = box.value; // exactly what was typed: read when Enter is pressed, not later
    if (!text.trim() || model.get("busy")) return;
    model.send({ type: "send", text });
    box.value = "";
    grow();
    saveDraft();
    stick = true;
  }
  box.value = model.get("draft");
  box.addEventListener("input", () => {
    grow();
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveDraft, DRAFT_MS);
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      if (event.isComposing || event.keyCode === 229) return; // an input method is composing
      event.preventDefault();
      send();
    }
  });
  sendButton.addEventListener("click", send);
  stopButton.addEventListener("click", () => model.send({ type: "stop" }));
  newButton.addEventListener("click", () => model.send({ type: "new" }));

  // keys typed in the panel are the panel's: the notebook must not run the cell (Shift+Enter,
  // Ctrl+Enter) or take letters and editing keys as commands. Other shortcuts (Ctrl+S) and
  // Escape (back to the notebook) still reach it.
  const EDITING = new Set(["a", "c", "v", "x", "y", "z"]);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape") return;
    const accel = event.ctrlKey || event.metaKey;
    if (!accel || event.key === "Enter" || EDITING.has(event.key.toLowerCase())) event.stopPropagation();
  });

  // -- the pickers ----------------------------------------------------------------------
  convSelect.addEventListener("focus", () => model.send({ type: "conversations" }));
  convSelect.addEventListener("change", () => {
    model.set("conversation_name", convSelect.value);
    model.save_changes();
  });
  providerSelect.addEventListener("change", () => {
    model.set("provider", providerSelect.value);
    model.save_changes();
  });

  // -- the model box: any name, or one of the server's ----------------------------------
  let active = -1;
  let filtered = false; // the user typed since the list opened: show the names that match
  function choices() {
    const names = model.get("models");
    const typed = modelInput.value.trim().toLowerCase();
    return filtered && typed ? names.filter((n) => n.toLowerCase().includes(typed)) : names;
  }
  function fillList() {
    const names = choices();
    const rows = names.map((name, i) => {
      const row = make("div", "cm-option", { role: "option", text: name, id: `${modelInput.id}-${i}` });
      row.setAttribute("aria-selected", String(i === active));
      row.addEventListener("mousedown", (event) => {
        event.preventDefault(); // keep the focus in the box
        pick(name);
      });
      return row;
    });
    const note = model.get("models_note");
    if (note) rows.unshift(make("div", "cm-note", { text: note }));
    else if (!names.length) rows.push(make("div", "cm-note", { text: "No model matches: the name typed is used as it is." }));
    list.replaceChildren(...rows);
  }
  function openList() {
    if (!list.hidden) return;
    filtered = false;
    active = -1;
    list.hidden = false;
    modelInput.setAttribute("aria-expanded", "true");
    fillList();
    model.send({ type: "models" });
  }
  function closeList() {
    list.hidden = true;
    modelInput.setAttribute("aria-expanded", "false");
  }
  function commitModel() {
    const value = modelInput.value.trim();
    if (value !== model.get("model")) {
      model.set("model", value);
      model.save_changes();
    }
  }
  function pick(name) {
    modelInput.value = name;
    closeList();
    commitModel();
  }
  listButton.addEventListener("mousedown", (event) => event.preventDefault());
  listButton.addEventListener("click", () => {
    if (list.hidden) {
      modelInput.focus();
      openList();
    } else closeList();
  });
  modelInput.addEventListener("input", () => {
    openList();
    filtered = true;
    active = -1;
    fillList();
  });
  modelInput.addEventListener("keydown", (event) => {
    const names = choices();
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      openList();
      if (names.length && event.key === "ArrowDown") active = (active + 1) % names.length;
      else if (names.length) active = active <= 0 ? names.length - 1 : active - 1;
      fillList();
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (!list.hidden && active >= 0 && names[active]) pick(names[active]);
      else {
        closeList();
        commitModel();
      }
    } else if (event.key === "Escape") {
      event.stopPropagation();
      closeList();
      modelInput.value = model.get("model");
    }
  });
  modelInput.addEventListener("blur", () => {
    closeList();
    commitModel();
  });

  grow();
  return () => {
    clearTimeout(giveUp);
    if (draftTimer !== null) saveDraft();
    for (const stop of off) stop();
  };
}

export default { render };
