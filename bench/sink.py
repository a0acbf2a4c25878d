"""A local HTTP target for the runtime benchmarks: answers every request with 204.

Run in its own process (`python -m bench.sink --port N`) so it never shares the
server's event loop. It records when each request arrived and which run it carried
(`X-Cronkeeper-Run-Id`) and how late it came after its slot
(`X-Cronkeeper-Scheduled-For`), and serves them at `GET /__stats` (arrival times as Unix
seconds; `?since=` keeps only later arrivals) and resets at `POST /__reset`.

Requests to `/alert/…` are alert webhooks (the `alerts` scenario): their JSON body is
read and `[arrival, job.slug, event, run.id, path]` kept per request
(`GET /__stats?alerts=1`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import datetime

from aiohttp import web


class Recorder:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.run_ids: Counter[str] = Counter()
        # (slot, arrival - slot) per first delivery of a run, Unix seconds
        self.lateness: list[tuple[float, float]] = []
        self._slots: dict[str, float] = {}
        self.first_arrival: dict[str, float] = {}  # run id (hex) -> first arrival
        # alert webhooks: [arrival, job slug, event, run id, path] per request
        self.alerts: list[list[object]] = []

    async def hook(self, request: web.Request) -> web.Response:
        now = time.time()
        self.arrivals.append(now)
        run_id = request.headers.get("X-Cronkeeper-Run-Id")
        if run_id:
            self.run_ids[run_id] += 1
            if self.run_ids[run_id] == 1:
                self.first_arrival[run_id.replace("-", "")] = now
                slot = request.headers.get("X-Cronkeeper-Scheduled-For")
                if slot:
                    at = self._slot_time(slot)
                    self.lateness.append((at, now - at))
        body = await request.read()
        if request.path.startswith("/alert"):
            self._alert(now, body, request.path)
        return web.Response(status=204)

    def _alert(self, now: float, body: bytes, path: str) -> None:
        try:
            data = json.loads(body)
            # a digest stands for many alerts: one entry per alert it carries
            for alert in data.get("alerts") or [data] if data.get("event") == "digest" else [data]:
                job, run = alert.get("job") or {}, alert.get("run") or {}
                self.alerts.append([now, job.get("slug"), alert.get("event"), run.get("id"), path])
        except (ValueError, AttributeError):
            self.alerts.append([now, None, None, None, path])

    def _slot_time(self, text: str) -> float:
        value = self._slots.get(text)
        if value is None:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            if len(self._slots) > 100_000:
                self._slots.clear()
            self._slots[text] = value
        return value

    async def stats(self, request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        arrivals = [t for t in self.arrivals if t >= since]
        duplicates = sum(n - 1 for n in self.run_ids.values() if n > 1)
        body = {
            "requests": len(self.arrivals),
            "distinct_runs": len(self.run_ids),
            "duplicate_deliveries": duplicates,
            "arrivals": arrivals if request.query.get("arrivals") == "1" else [],
            "arrivals_since": len(arrivals),
            "lateness": self.lateness if request.query.get("lateness") == "1" else [],
            "runs": self.first_arrival if request.query.get("runs") == "1" else {},
            "alerts": self.alerts if request.query.get("alerts") == "1" else [],
        }
        return web.json_response(body)

    async def reset(self, request: web.Request) -> web.Response:
        self.arrivals.clear()
        self.run_ids.clear()
        self.lateness.clear()
        self.first_arrival.clear()
        self.alerts.clear()
        return web.Response(status=204)


def build_app() -> web.Application:
    recorder = Recorder()
    app = web.Application()
    app.router.add_get("/__stats", recorder.stats)
    app.router.add_post("/__reset", recorder.reset)
    app.router.add_route("*", "/{tail:.*}", recorder.hook)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(
        build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096
    )


if __name__ == "__main__":
    main()
