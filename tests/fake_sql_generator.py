"""A stand-in OpenAI-compatible chat-completions server on 127.0.0.1, for question-mode tests.

It answers by a keyword in the question (see ANSWERS), counts its calls by question, and keeps the last
request body of each, so tests can check what the generator was shown and how often it was asked.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_SQL = "SELECT count(*) AS people FROM person"


def _chat(content: str, **extra: Any) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **extra},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 12, "total_tokens": 333}}


# keyword in the question -> (HTTP status, body: dict as JSON, str as is, None: sleep past any timeout)
ANSWERS: dict[str, tuple[int, Any]] = {
    "prose": (200, _chat(f"Sure! Here is the query you asked for:\n\n{GOOD_SQL};\n\nIt counts every person.")),
    "delete": (200, _chat("```sql\nDELETE FROM person\n```")),
    "other tenant": (200, _chat("SELECT count(*) AS n FROM warehouse_other.main.person")),
    "two statements": (200, _chat("SELECT 1 AS a; SELECT 2 AS b;")),
    "nothing": (200, _chat("NO SQL")),
    "refuse": (200, _chat(None, refusal="I can't help with that.")),
    "garbage": (200, "<html>definitely not json</html>"),
    "malformed": (200, {"choices": []}),
    "broken": (500, {"error": {"message": "secret-internal-detail sk-live-123"}}),
    "busy": (429, {"error": {"message": "slow down"}}),
    "slow": (200, None),
    "people": (200, _chat(f"```sql\n{GOOD_SQL}\n```")),  # last: the other keywords win over it
}


class FakeSqlGenerator:
    def __init__(self, slow_seconds: float = 30.0) -> None:
        self.calls: Counter[str] = Counter()
        self.requests: dict[str, dict] = {}
        self.headers: dict[str, dict] = {}
        self.slow_seconds = slow_seconds
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                question = _question(body)
                key = next((k for k in ANSWERS if k in question.lower()), "people")
                fake.calls[key] += 1
                fake.requests[key] = body
                fake.headers[key] = dict(self.headers)
                status, answer = ANSWERS[key]
                if self.path.rstrip("/") != "/v1/chat/completions":
                    status, answer = 404, {"error": {"message": "no such route"}}
                if answer is None:
                    fake._stop.wait(fake.slow_seconds)
                    answer = _chat(GOOD_SQL)
                payload = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSqlGenerator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def _question(body: dict) -> str:
    user = next((m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"), "")
    match = re.search(r"^Question: (.*)$", user, re.MULTILINE)
    return match.group(1) if match else user


if __name__ == "__main__":  # run it by hand: python -m tests.fake_sql_generator
    with FakeSqlGenerator() as fake:
        print(fake.url, flush=True)
        while True:
            time.sleep(3600)
