"""The one stylesheet of every skin: cell replies, the panel, ``%chat history``, tables.

Only the rules, as strings (this module imports nothing): which output carries which part
is :mod:`chatmagic._cellstream`'s business (a cell's replies) and the panel's (its widget
stylesheet); :mod:`chatmagic.present` draws with them.
"""

from __future__ import annotations

__all__ = ["CSS", "FALLBACK_STYLE", "FULL_STYLE", "PALETTE_CSS", "REPLY_CSS", "STYLE", "TABLE_STYLE"]

# One stylesheet for every skin. Every text reaches a contrast of 4.5:1 in JupyterLab's light
# and dark themes (measured in tests/browser): text and surfaces take the theme's variables
# (--jp-content-font-color1, --jp-layout-color1), and what the themes do not offer at that
# contrast (muted text, links, bubbles, code colours) is one palette of --cm-* variables with
# a dark variant, chosen by the theme's own flag (JupyterLab and Notebook 7:
# body[data-jp-theme-light=false]; VS Code: body.vscode-dark). Code colours are the markup
# render.highlight sets (keywords <b>, comments <i>, the rest one-letter classes): a few bytes
# a token instead of an inline style, and each theme gets its own colours.
# REPLY_CSS is what a cell's reply needs (it travels with the reply's outputs); the rest
# draws the transcript of the panel and of %chat history.
_SCOPES = (
    ".chatmagic-reply",
    ".chatmagic-panel",
    ".chatmagic-transcript",
    ".chatmagic-status",
    ".chatmagic-thinking",
)
_LIGHT = (
    "--cm-fg:var(--jp-content-font-color1,#1f1f1f);--cm-bg:var(--jp-layout-color1,#fff);"
    "--cm-muted:#595959;--cm-link:#0d47a1;--cm-error:#c62828;--cm-warn:#9a4700;"
    "--cm-bubble:#f0f0f0;--cm-user:#e3f2fd;--cm-code-bg:#f5f5f5;--cm-rule:#c4c4c4;"
    "--cm-kw:#007000;--cm-comment:#3d6666;--cm-str:#a31515;--cm-def:#0030b0;--cm-builtin:#1a6b1a;"
    "--cm-deco:#7a2fb5;--cm-tag:#11661a;--cm-attr:#6b5b00"
)
_DARK = (
    "--cm-fg:var(--jp-content-font-color1,#fff);--cm-bg:var(--jp-layout-color1,#212121);"
    "--cm-muted:#b3b3b3;--cm-link:#8ab4f8;--cm-error:#ff8a80;--cm-warn:#ffb74d;"
    "--cm-bubble:#2b2b2b;--cm-user:#173451;--cm-code-bg:#161616;--cm-rule:#5c5c5c;"
    "--cm-kw:#6fd46f;--cm-comment:#9ab8b8;--cm-str:#ff9b9b;--cm-def:#82aaff;--cm-builtin:#8fd68f;"
    "--cm-deco:#d7a8ff;--cm-tag:#7ee08a;--cm-attr:#e2c466"
)
_DARK_THEMES = ("body[data-jp-theme-light=false]", "body.vscode-dark", "body.vscode-high-contrast")
PALETTE_CSS = (
    f":is({','.join(_SCOPES)}){{{_LIGHT}}}:is({','.join(_DARK_THEMES)}) :is({','.join(_SCOPES)}){{{_DARK}}}"
)
# a reply in a cell sits in JupyterLab's rendered-HTML styles: the doubled class outranks them
_R = ".chatmagic-reply.chatmagic-reply"
REPLY_CSS = PALETTE_CSS + (
    ".chatmagic-status{color:var(--cm-muted);font-size:85%;margin-top:.3em}"
    ".chatmagic-status.chatmagic-error,.chatmagic-error{color:var(--cm-error)}"
    ".chatmagic-status.chatmagic-stopped,.chatmagic-stopped{color:var(--cm-warn)}"
    ".chatmagic-text{white-space:pre-wrap;margin:0}"
    # a block cut across outputs while it streamed (chatmagic._cellstream): no seam between pieces
    f"{_R}.chatmagic-more,{_R}.chatmagic-more>:last-child{{margin-bottom:0;padding-bottom:0;border-bottom-left-radius:0;"
    "border-bottom-right-radius:0}"
    f"{_R}.chatmagic-cont>:first-child{{margin-top:0;padding-top:0;border-top-left-radius:0;"
    "border-top-right-radius:0}"
    ".chatmagic-thinking{color:var(--cm-muted);font-size:90%;margin:.2em 0 .4em}"
    ".chatmagic-thinking summary{cursor:pointer}"
    ".chatmagic-thinking-text{white-space:pre-wrap;border-left:3px solid var(--cm-rule);"
    "padding-left:.6em;max-height:24em;overflow:auto}"
    f"{_R} pre:not(.chatmagic-text){{background:var(--cm-code-bg);color:var(--cm-fg);padding:.5em .7em;"
    "border-radius:4px;overflow-x:auto;line-height:1.35}"
    f"{_R} pre code{{background:none;padding:0;color:inherit}}"
    f"{_R} :not(pre)>code{{background:var(--cm-code-bg);color:var(--cm-fg);padding:.05em .3em;border-radius:3px}}"
    f"{_R} table{{border-collapse:collapse;margin:.5em 0}}"
    f"{_R} th,{_R} td{{border:1px solid var(--cm-rule);padding:.2em .6em;color:var(--cm-fg);"
    "background:var(--cm-bg)}"
    f"{_R} th{{background:var(--cm-code-bg)}}"
    f"{_R} a:link,{_R} a:visited{{color:var(--cm-link);text-decoration:underline}}"
    f"{_R} blockquote{{border-left:3px solid var(--cm-rule);margin:.4em 0;padding-left:.8em;color:var(--cm-fg)}}"
    ".chatmagic-reply pre b{color:var(--cm-kw)}"
    ".chatmagic-reply pre i{color:var(--cm-comment)}"
    ".chatmagic-reply .s{color:var(--cm-str)}"
    ".chatmagic-reply .f{color:var(--cm-def)}"
    ".chatmagic-reply .n{color:var(--cm-builtin)}"
    ".chatmagic-reply .d{color:var(--cm-deco)}"
    ".chatmagic-reply .t{color:var(--cm-tag)}"
    ".chatmagic-reply .a{color:var(--cm-attr)}"
)
CSS = REPLY_CSS + (
    ".chatmagic-msg{padding:4px 10px;margin:4px 0;border-radius:8px;line-height:1.45;overflow-wrap:anywhere;"
    "color:var(--cm-fg)}"
    ".chatmagic-msg p{margin:.35em 0}"
    ".chatmagic-msg h1,.chatmagic-msg h2,.chatmagic-msg h3,.chatmagic-msg h4{margin:.5em 0 .3em;line-height:1.25}"
    ".chatmagic-msg h1{font-size:1.3em}.chatmagic-msg h2{font-size:1.18em}.chatmagic-msg h3{font-size:1.06em}"
    ".chatmagic-msg ul,.chatmagic-msg ol{margin:.3em 0;padding-left:1.6em}"
    ".chatmagic-msg hr{border:0;border-top:1px solid var(--cm-rule)}"
    ".chatmagic-user{background:var(--cm-user);margin-left:12%}"
    ".chatmagic-assistant{background:var(--cm-bubble);margin-right:4%}"
    ".chatmagic-who{font-size:80%;font-weight:600;color:var(--cm-muted)}"
    ".chatmagic-user-text{white-space:pre-wrap;margin:.3em 0}"
    ".chatmagic-empty{color:var(--cm-muted);font-style:italic;padding:.6em .2em}"
)
#: what a table (%chat providers, --dry-run) carries: JupyterLab's rendered-HTML style aligns
#: cells right (.jp-RenderedHTMLCommon td), which also pushes each line of a multi-line prompt
#: to the right and so hides its indentation; the doubled class outranks it
TABLE_STYLE = "<style>.chatmagic-table.chatmagic-table :is(th,td){text-align:left;vertical-align:top}</style>"
#: what a cell's reply carries (the first output and the final update)
STYLE = f"<style>{REPLY_CSS}</style>"
#: what the panel and %chat history carry
FULL_STYLE = f"<style>{CSS}</style>"
#: what every reply of a cell carries when an earlier one of the kernel session carried STYLE
#: (chatmagic._cellstream.SHEET), and the notes under a table (--dry-run, %chat providers: they
#: need nothing else of STYLE): rules of zero specificity (:where), so that STYLE, wherever it
#: is in the page, wins every property; without it (that output cleared), the status line is
#: still small and muted, an error red, a stop orange, in light and dark themes alike
FALLBACK_STYLE = (
    "<style>:where(.chatmagic-status){color:color-mix(in srgb,currentColor 70%,transparent);"
    "font-size:85%}:where(.chatmagic-error){color:#e5484d}:where(.chatmagic-stopped){color:#d97917}</style>"
)
