"""`cronkeeper.Client`: the async Python client of the HTTP API (the CLI uses it too).

    async with Client("http://127.0.0.1:8080", api_key) as ck:
        job = await ck.create_job({"slug": "nightly", "kind": "http", ...})
        async for job in ck.iter_jobs(tag="reports"):
            ...

Every method returns the `data` of the API envelope; an error answer raises
`cronkeeper.errors.ClientError` with the HTTP status and the problem's detail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp

from cronkeeper import __version__
from cronkeeper.errors import ClientError

JSON = dict[str, Any]


class Client:
    """One API client bound to a server URL, a key and a project."""

    def __init__(
        self, url: str, api_key: str | None, *, project: str = "default", timeout: float = 30
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project
        headers = {"User-Agent": f"cronkeeper-client/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, *, json: object = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Send one request; return the parsed JSON (None for 204); raise ClientError on 4xx/5xx."""
        if self._session is None:
            raise RuntimeError("use 'async with Client(...)' before making requests")
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._session.request(
                method, self.url + path, json=json, params=query
            ) as response:
                return await _answer(response)
        except aiohttp.ClientConnectionError as error:
            raise ClientError(0, f"cannot reach Cronkeeper at {self.url} ({error})") from None
        except TimeoutError:
            raise ClientError(0, f"Cronkeeper at {self.url} did not answer in time") from None

    def _project_path(self, suffix: str = "") -> str:
        return f"/api/v1/projects/{self.project}{suffix}"

    async def list_jobs(self, **filters: Any) -> JSON:
        """One page `{"items", "next_cursor"}`; filters: tag, status, kind, limit, cursor."""
        return await self._data("GET", self._project_path("/jobs"), params=filters)

    async def iter_jobs(self, **filters: Any) -> AsyncIterator[JSON]:
        """Every job matching the filters, following cursors."""
        async for item in self._iterate(self._project_path("/jobs"), filters):
            yield item

    async def get_job(self, slug: str) -> JSON:
        return await self._data("GET", self._project_path(f"/jobs/{slug}"))

    async def create_job(self, body: JSON) -> JSON:
        return await self._data("POST", self._project_path("/jobs"), json=body)

    async def update_job(self, slug: str, patch: JSON) -> JSON:
        """Apply a JSON merge patch to a job."""
        path = self._project_path(f"/jobs/{slug}")
        return await self._data("PATCH", path, json=patch)

    async def delete_job(self, slug: str) -> None:
        await self.request("DELETE", self._project_path(f"/jobs/{slug}"))

    async def pause_job(self, slug: str) -> JSON:
        return await self._data("POST", self._project_path(f"/jobs/{slug}/pause"))

    async def resume_job(self, slug: str) -> JSON:
        return await self._data("POST", self._project_path(f"/jobs/{slug}/resume"))

    async def trigger_job(self, slug: str, payload: Any = None) -> JSON:
        """Queue a run of the job now; `payload` reaches the run."""
        body = None if payload is None else {"payload": payload}
        return await self._data("POST", self._project_path(f"/jobs/{slug}/trigger"), json=body)

    async def list_runs(self, slug: str | None = None, **filters: Any) -> JSON:
        """One page of runs of a job (or of the project): `{"items", "next_cursor"}`.

        Filters: status, source, job, from, to, sort, order, limit, cursor.
        """
        path = f"/jobs/{slug}/runs" if slug else "/runs"
        return await self._data("GET", self._project_path(path), params=filters)

    async def iter_runs(self, slug: str | None = None, **filters: Any) -> AsyncIterator[JSON]:
        """Every run matching the filters, following cursors."""
        path = self._project_path(f"/jobs/{slug}/runs" if slug else "/runs")
        async for item in self._iterate(path, filters):
            yield item

    async def get_run(self, run_id: str) -> JSON:
        """A run with its attempts."""
        return await self._data("GET", self._project_path(f"/runs/{run_id}"))

    async def list_events(self, run_id: str, after: int = 0) -> list[JSON]:
        """A run's events in order."""
        page = await self._data(
            "GET", self._project_path(f"/runs/{run_id}/events"), params={"after": after}
        )
        items: list[JSON] = page["items"]
        return items

    async def replay_run(self, run_id: str) -> JSON:
        return await self._data("POST", self._project_path(f"/runs/{run_id}/replay"))

    async def cancel_run(self, run_id: str) -> JSON:
        return await self._data("POST", self._project_path(f"/runs/{run_id}/cancel"))

    async def stats(self, since: str = "24h") -> JSON:
        """Per-job run statistics over the window (`24h`, `7d`, …)."""
        return await self._data("GET", self._project_path("/stats"), params={"since": since})

    async def list_audit(self, **filters: Any) -> JSON:
        """One page of audit entries (filters: action, outcome, from, to, limit, cursor)."""
        return await self._data("GET", self._project_path("/audit"), params=filters)

    async def list_maintenance(self) -> JSON:
        """The project's maintenance windows (one page: `items`)."""
        return await self._data("GET", self._project_path("/maintenance"))

    async def create_maintenance(self, body: JSON) -> JSON:
        return await self._data("POST", self._project_path("/maintenance"), json=body)

    async def delete_maintenance(self, name: str) -> None:
        await self.request("DELETE", self._project_path(f"/maintenance/{name}"))

    async def _data(self, method: str, path: str, **options: Any) -> JSON:
        answer = await self.request(method, path, **options)
        data: JSON = answer["data"]
        return data

    async def _iterate(self, path: str, filters: dict[str, Any]) -> AsyncIterator[JSON]:
        params = dict(filters)
        while True:
            page = await self._data("GET", path, params=params)
            for item in page["items"]:
                yield item
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


async def _answer(response: aiohttp.ClientResponse) -> Any:
    if response.status == 204:
        return None
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = None
    if response.status >= 400:
        detail = body.get("detail") if isinstance(body, dict) else None
        raise ClientError(response.status, detail or f"HTTP {response.status}", body)
    return body
