"""What a user of the panel sees and does in JupyterLab, measured in headless Chromium.

- the box: Enter sends, Shift+Enter adds a line, a paste keeps its lines, the box grows up
  to a limit, and what is sent is exactly what was typed, even typed fast;
- contrast: every text of the panel and of ``%%chat`` output reaches 4.5:1 in the light and
  the dark theme, measured from the computed styles (code colours, links, status lines);
- a narrow notebook: nothing overflows, no button or picker is cut off;
- New chat keeps the old conversation, and the picker goes back to it;
- the model box shows what a cell chose and lists the server's models;
- a 10,000-exchange conversation opens in under a second.

Screenshots and the figures go to ``test-artifacts/browser/`` (``panel-ui.json``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import ARTIFACTS, cell, missing, output_text, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Locator, Page, expect  # noqa: E402 - after the skip

RICH = (
    "[[reply]]## A heading\n\nSome `inline code`, a [link](https://example.com/docs) and **bold**.\n\n"
    "```python\n@cache\ndef area(r: float) -> float:\n    # the comment\n    return 3.14 * r ** 2  "
    "if r else len('none')\n\nclass Shape:\n    pass\n```\n\n"
    "| name | value |\n|---|---|\n| a | 1 |\n| b | 2 |\n\n> a quote\n\n- one\n- two\n"
)
BIG = 10_000

CELLS = [
    "%load_ext chatmagic\n%chat sandbox",
    "panel = %chat panel\npanel",
    f"%%chat -c cells -p opchatgpts\n{RICH}",
    "%%chat -c cells -p ollama\nThink first [[fault:reasoning]]",
    "%chat history cells",
    "%%chat -p ollama -m gpt-4o\nfrom a cell [[words:3]]",
    (
        "from chatmagic import get_session\n"
        "from chatmagic.session import Exchange, Message\n"
        f"get_session().conversation('big').adopt([Exchange(Message('user', f'question {{i}}'), "
        f"Message('assistant', f'answer **{{i}}**'), 'chatgptt', 'gpt-4o') for i in range({BIG})])"
    ),
    "big = %chat panel big\nbig",
    (
        "import json\n"
        "s = get_session()\n"
        "print('REPORT', json.dumps({c.name: [ex.user.content for ex in c.exchanges][-8:] "
        "for c in s if c.name != 'big'} | {'big': len(s.conversation('big'))}))"
    ),
]

#: every visible text under the chatmagic roots: its colour over the background it sits on
CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c && c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) {
        layers.push(c);
        if (c.a >= 1) break;
      }
    }
    let out = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) out = over(layers[i], out);
    return out;
  };
  const opacity = (el) => {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => {
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const hex = ({ r, g, b }) => "#" + [r, g, b].map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  const results = [];
  const measure = (el, text, color, where) => {
    const bg = background(el);
    let fg = over(parse(color), bg);
    const o = opacity(el);
    if (o < 1) fg = over({ ...fg, a: o }, bg);
    results.push({ text: text.trim().slice(0, 40), ratio: Math.round(ratio(fg, bg) * 100) / 100,
                   fg: hex(fg), bg: hex(bg), where });
  };
  const describe = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === "string"
    ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  const roots = [...document.querySelectorAll(
    ".chatmagic-panel, .chatmagic-reply, .chatmagic-transcript, .chatmagic-thinking, .chatmagic-status")];
  const seen = new Set();
  for (const root of roots) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (seen.has(node) || !node.data.trim()) continue;
      seen.add(node);
      const el = node.parentElement;
      if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const box = range.getBoundingClientRect();
      if (!box.width || !box.height) continue;
      measure(el, node.data, getComputedStyle(el).color, describe(el));
    }
    // what form controls show is not a text node: their value, or the placeholder
    for (const el of root.querySelectorAll("select, input, textarea")) {
      if (seen.has(el) || !el.checkVisibility()) continue;
      seen.add(el);
      const shown = el.tagName === "SELECT" ? el.selectedOptions[0]?.textContent || "" : el.value;
      if (shown) measure(el, shown, getComputedStyle(el).color, describe(el));
      else if (el.placeholder) measure(el, el.placeholder, getComputedStyle(el, "::placeholder").color,
                                       describe(el) + "::placeholder");
    }
  }
  const failures = results.filter((r) => r.ratio < 4.5);
  return { count: results.length, min: Math.min(...results.map((r) => r.ratio)), failures,
           worst: results.sort((a, b) => a.ratio - b.ratio).slice(0, 5) };
}
"""

#: what overflows sideways in and around a panel, and what is cut off in it
LAYOUT_JS = """
(panel) => {
  const out = { width: panel.getBoundingClientRect().width, overflowing: [], clipped: [] };
  const sideways = (el) => el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible";
  for (let e = panel; e && e !== document.body; e = e.parentElement) {
    if (sideways(e)) out.overflowing.push(e.className || e.tagName);
  }
  if (panel.scrollWidth > panel.clientWidth + 1) out.overflowing.push("chatmagic-panel");
  const right = panel.getBoundingClientRect().right;
  for (const el of panel.querySelectorAll("button, select, input, textarea, .cm-label")) {
    if (!el.checkVisibility()) continue;
    const r = el.getBoundingClientRect();
    if (r.right > right + 0.5) out.clipped.push(`${el.className}: right edge ${r.right} > ${right}`);
    if (el.tagName === "BUTTON" && el.scrollWidth > el.clientWidth + 1)
      out.clipped.push(`${el.className}: text ${el.scrollWidth} > ${el.clientWidth}`);
    if (el.tagName === "SELECT") {
      // the chosen option's words must fit beside the arrow
      const style = getComputedStyle(el);
      const ctx = document.createElement("canvas").getContext("2d");
      ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      const words = ctx.measureText(el.selectedOptions[0]?.textContent || "").width;
      if (words + 24 > el.clientWidth) out.clipped.push(`${el.className}: "${el.value}" needs ${words + 24} > ${el.clientWidth}`);
    }
  }
  return out;
}
"""


def test_panel_ui_in_jupyterlab(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "panel-ui-failure.png"))
        raise


def _figures(update: dict[str, Any]) -> None:
    path = ARTIFACTS / "panel-ui.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures.update(update)
    path.write_text(json.dumps(figures, indent=2))


def _contrast(page: Page, theme: str) -> None:
    # every Thinking block open and the model list showing: their text is measured too
    page.evaluate("() => document.querySelectorAll('details.chatmagic-thinking').forEach(d => d.open = true)")
    result = page.evaluate(CONTRAST_JS)
    _figures(
        {f"contrast_{theme}": {"texts": result["count"], "lowest": result["min"], "worst": result["worst"]}}
    )
    assert result["count"] > 150, result
    assert not result["failures"], json.dumps(result["failures"], indent=1)


def _set_theme(page: Page, name: str, light: bool) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {name!r}}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'")
    layout = "#111" if not light else "white"
    page.wait_for_function(
        f"() => getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim() === '{layout}'"
    )
    page.wait_for_timeout(300)


def _panel(page: Page, i: int) -> Locator:
    return cell(page, i).locator(".chatmagic-panel")


def _drive(page: Page) -> None:
    start_kernel_cell(page, 0, "Local stand-in")
    run_cell(page, 1)
    panel = _panel(page, 1)
    expect(panel).to_be_visible(timeout=30_000)
    wait_idle(page)
    box = panel.locator("textarea")
    status = panel.locator(".cm-status")

    # -- the box -----------------------------------------------------------------------
    box.click()
    one_line = box.evaluate("el => el.offsetHeight")
    cells = "() => [...document.querySelectorAll('.jp-Cell')].map(c => c.classList.contains('jp-mod-active'))"
    before = page.evaluate(cells)
    # letters that are notebook commands outside the box (dd deletes a cell, a and b add one)
    page.keyboard.type("line one: dd a b")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(box).to_have_value("line one: dd a b\nline two")
    assert box.evaluate("el => el.offsetHeight") > one_line  # it grew
    # the keys stayed in the box: the notebook did not run the cell, move on, or change its cells
    assert page.evaluate(cells) == before
    expect(cell(page, 2).locator(".jp-OutputArea-output")).to_have_count(0)

    # a paste keeps its lines, its indentation and its blank lines
    code = "\n".join(
        ["Why is this slow?", "", "```python", "def slow(n):", "\tout = []  ", "    for i in range(n):"]
        + [f"        out.append(i * {k})" for k in range(40)]
        + ["    return out", "```", "", "  [[words:5]]"]
    )
    box.press("Control+a")
    box.press("Delete")
    page.evaluate("text => navigator.clipboard.writeText(text)", code)
    box.press("Control+v")
    expect(box).to_have_value(code)
    grown = box.evaluate(
        "el => ({height: el.offsetHeight, inner: el.clientHeight, scroll: el.scrollHeight, max: getComputedStyle(el).maxHeight})"
    )
    assert (
        grown["scroll"] > grown["inner"] and grown["height"] <= float(grown["max"].removesuffix("px")) + 1
    ), grown
    box.press("Enter")
    expect(box).to_have_value("")
    expect(panel.locator(".chatmagic-user").last).to_contain_text("out.append(i * 39)")
    expect(status).to_contain_text("first text", timeout=30_000)
    assert box.evaluate("el => el.offsetHeight") <= one_line + 1  # back to one line

    # typed fast, Enter at once: the whole text is sent
    fast = "the quick brown fox jumps over the lazy dog 0123456789"
    box.press_sequentially(fast, delay=0)
    box.press("Enter")
    expect(panel.locator(".chatmagic-user").last).to_have_text(f"You{fast}")
    expect(status).to_contain_text("first text", timeout=30_000)

    # a reply with code, a table and a link; a reasoning model's Thinking; a stopped reply
    panel.locator(".cm-provider select").select_option(value="opchatgpts")
    box.fill(RICH)
    box.press("Enter")
    expect(panel.locator(".chatmagic-assistant").last.locator("table")).to_be_visible(timeout=30_000)
    panel.locator(".cm-provider select").select_option(value="ollama")
    box.fill("Think first [[fault:reasoning]]")
    box.press("Enter")
    expect(panel.locator(".chatmagic-thinking").last).to_contain_text("Thinking (", timeout=30_000)
    panel.locator(".cm-provider select").select_option(value="opchatgpts")
    box.fill("[[words:300]][[delay:0.05]]")
    box.press("Enter")
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("w5 ", timeout=15_000)
    panel.locator("button.cm-stop").click()
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("■ stopped", timeout=15_000)
    # an error leaves the message in the box and says so in red
    box.fill("this fails [[fault:http500]]")
    box.press("Enter")
    expect(status.locator(".chatmagic-error")).to_contain_text("back in the box", timeout=30_000)
    expect(box).to_have_value("this fails [[fault:http500]]")

    # -- %%chat output, %chat history; a cell's model shows in the panel -------------------
    for i in (2, 3, 4):
        run_cell(page, i)
        wait_idle(page)
    expect(cell(page, 2).locator(".chatmagic-reply pre")).to_be_visible()
    expect(cell(page, 3).locator(".chatmagic-thinking")).to_contain_text("Thinking (")
    expect(cell(page, 4).locator(".chatmagic-transcript table")).to_be_visible()
    run_cell(page, 5)
    wait_idle(page)
    expect(panel.locator(".cm-provider select")).to_have_value("ollama", timeout=10_000)
    expect(panel.locator(".cm-model input")).to_have_value("gpt-4o")
    # an error in the status line (the message still in the box), then the server's own list
    box.press("Enter")
    expect(status.locator(".chatmagic-error")).to_contain_text("back in the box", timeout=30_000)
    panel.locator(".cm-list-button").click()
    expect(panel.locator(".cm-option")).to_have_text(["gpt-4o", "gpt-4o-mini", "llama3.2"], timeout=10_000)

    # -- contrast, light then dark; screenshots ---------------------------------------------
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(ARTIFACTS / "ui-light-panel.png"))
    _contrast(page, "light")
    page.keyboard.press("Escape")
    _set_theme(page, "JupyterLab Dark", light=False)
    panel.locator(".cm-list-button").click()
    expect(panel.locator(".cm-option").first).to_be_visible()
    panel.screenshot(path=str(ARTIFACTS / "ui-dark-panel.png"))
    _contrast(page, "dark")
    page.keyboard.press("Escape")
    panel.locator("textarea").click()  # the list closes
    for i, name in (
        (2, "ui-dark-cell-markdown.png"),
        (3, "ui-dark-cell-thinking.png"),
        (4, "ui-dark-history.png"),
    ):
        cell(page, i).scroll_into_view_if_needed()
        cell(page, i).screenshot(path=str(ARTIFACTS / name))
    _set_theme(page, "JupyterLab Light", light=True)

    # -- layout: wide, then narrow -------------------------------------------------------
    wide = panel.evaluate(LAYOUT_JS)
    assert not wide["overflowing"] and not wide["clipped"], wide
    # a phone-sized window with the side bars closed: the panel gets about 340 px
    page.evaluate(
        "() => { window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }"
    )
    page.set_viewport_size({"width": 460, "height": 900})
    page.wait_for_timeout(500)
    panel.scroll_into_view_if_needed()
    narrow = panel.evaluate(LAYOUT_JS)
    _figures({"layout_wide": wide, "layout_narrow": narrow})
    assert 300 < narrow["width"] < 380, narrow
    assert not narrow["overflowing"] and not narrow["clipped"], narrow
    for name in ("Send", "Stop", "New chat"):
        expect(panel.get_by_role("button", name=name, exact=True)).to_have_text(name)
    panel.screenshot(path=str(ARTIFACTS / "ui-narrow-panel.png"))
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.wait_for_timeout(300)

    # -- New chat keeps the old conversation -------------------------------------------
    picker = panel.locator(".cm-conv select")
    kept = panel.locator(".cm-item").count()
    panel.get_by_role("button", name="New chat", exact=True).click()
    expect(picker).to_have_value("chat-2")
    expect(panel.locator(".chatmagic-empty")).to_have_text("No messages yet — write one below.")
    expect(panel.locator(".cm-item")).to_have_count(0)
    expect(status).not_to_contain_text("500")  # the old error went with the old chat
    labels = picker.locator("option").all_inner_texts()
    assert any(label.startswith("default · ") for label in labels) and "chat-2 · 0 exchanges" in labels, (
        labels
    )
    panel.locator("textarea").fill("in the new chat [[words:2]]")
    panel.locator("textarea").press("Enter")
    expect(status).to_contain_text("first text", timeout=30_000)
    picker.select_option(value="default")
    expect(panel.locator(".cm-item")).to_have_count(kept)
    expect(panel.locator(".chatmagic-user").first).to_contain_text("Why is this slow?")

    # -- 10,000 exchanges open in under a second ---------------------------------------
    run_cell(page, 6)
    wait_idle(page)
    cell(page, 7).locator(".cm-content").click()
    cell(page, 7).evaluate("el => { el.dataset.cmBig = '1'; }")
    page.keyboard.press("Escape")
    started = time.monotonic()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        """() => { const items = document.querySelectorAll('[data-cm-big] .cm-item');
                   return items.length && items[items.length - 1].textContent.includes('answer 9999'); }""",
        polling="raf",
        timeout=30_000,
    )
    opened_s = time.monotonic() - started
    big = _panel(page, 7)
    shown = big.locator(".cm-item").count()
    _figures({"open_10000_exchanges_s": round(opened_s, 3), "messages_shown": shown})
    assert opened_s < 1.0, opened_s
    assert shown == 40
    wait_idle(page)
    earlier = big.get_by_role("button", name="Show earlier messages (9,980 more)")
    earlier.scroll_into_view_if_needed()  # the top of the transcript, as a user scrolls to it
    page.wait_for_timeout(100)
    first = big.locator(".cm-item").first.element_handle()
    top = first.evaluate("el => el.getBoundingClientRect().top")
    earlier.click()
    expect(big.locator(".cm-item")).to_have_count(80)
    expect(big.get_by_role("button", name="Show earlier messages (9,960 more)")).to_be_visible()
    # what was read stays where it was: the earlier messages go above it, out of view
    assert "question 9980" in first.inner_text()
    assert abs(first.evaluate("el => el.getBoundingClientRect().top") - top) < 2
    big.screenshot(path=str(ARTIFACTS / "ui-10000-exchanges.png"))

    # -- the kernel's view -------------------------------------------------------------
    run_cell(page, 8)
    expect(cell(page, 8).locator(".jp-OutputArea")).to_contain_text("REPORT", timeout=15_000)
    report = json.loads(output_text(page, 8).split("REPORT", 1)[1])
    _figures({"kernel": report})
    default = report["default"]
    assert code in default and fast in default  # sent exactly as typed
    assert report["chat-2"] == ["in the new chat [[words:2]]"]
    assert report["big"] == BIG
