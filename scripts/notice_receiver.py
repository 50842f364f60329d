"""A local receiver for the DAGs' failure and lateness notices, to try the webhook before pointing it at the real one.

    .venv/bin/python scripts/notice_receiver.py [--port 9099]
    AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK=http://127.0.0.1:9099/notices make airflow

Each notice POSTed to it is printed as it arrives (its one-line `text`) and kept in memory; http://127.0.0.1:PORT/
shows them, newest first, as an on-call person would read them in a chat room. Stdlib only; it binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import html
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTICES: list[dict] = []
STYLE = (
    "body{font-family:'Noto Sans CJK SC',sans-serif;margin:24px;background:#f4f5f7;max-width:1000px}"
    ".n{background:#fff;border-left:6px solid #c0392b;border-radius:6px;padding:12px 16px;margin:12px 0}"
    ".n.late{border-color:#e67e22}.t{font-weight:600;margin-bottom:6px}.k{color:#666;font-size:90%}"
    "pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;font-size:85%}"
)


def page() -> str:
    items = []
    for n in reversed(NOTICES):
        late = "late" if n.get("event") == "deadline_missed" else ""
        items.append(
            f'<div class="n {late}"><div class="t">{html.escape(str(n.get("text", "")))}</div>'
            f'<div class="k">event {html.escape(str(n.get("event", "")))}</div>'
            f"<pre>{html.escape(json.dumps(n, ensure_ascii=False, indent=2))}</pre></div>"
        )
    body = "".join(items) or "<p>no notice yet</p>"
    return f"<!doctype html><meta charset=utf-8><style>{STYLE}</style><h2>screening notices ({len(NOTICES)})</h2>{body}"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            notice = json.loads(raw)
        except ValueError:
            notice = {"event": "not JSON", "text": raw.decode("utf-8", "replace")}
        NOTICES.append(notice)
        print(notice.get("text", notice), flush=True)
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        body = page().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:  # the notices are the log
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9099)
    port = ap.parse_args().port
    print(f"notices: POST to http://127.0.0.1:{port}/notices, read at http://127.0.0.1:{port}/", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
