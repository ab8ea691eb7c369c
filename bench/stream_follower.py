"""Follow GET /orders/events for one token, resuming after every drop, and check what was seen.

For drills (``make chaos``) and tests: start a ``StreamFollower`` before the load, stop it
after, then ``follower.report(expected)`` against the event log, e.g.
``OrderEvent.objects.filter(owner=...).values_list("id", "order_id", "name")``:
events missed and events seen twice (both must be empty). Standard library only.

    follower = StreamFollower("http://127.0.0.1:8000", token, since=0)
    follower.start()
    ...
    follower.stop()
    print(follower.report(expected_rows))

From a drill that drives the service through ``manage.py`` (bench/common.py), the
expected rows are ``event_log_rows(env, username)``.
"""

import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FollowReport:
    seen: int
    missed: list = field(default_factory=list)  # event ids in the log never seen
    repeated: list = field(default_factory=list)  # event ids seen more than once
    unexpected: list = field(default_factory=list)  # seen, but not in the expected rows
    reconnects: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missed or self.repeated or self.unexpected)

    def __str__(self) -> str:
        return (
            f"{self.seen} events seen over {self.reconnects + 1} connection(s): "
            f"{len(self.missed)} missed, {len(self.repeated)} repeated, {len(self.unexpected)} unexpected"
        )


class StreamFollower:
    """One SSE client in a thread: records ``(event id, order id, event name)`` for every event."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        since: int | None = 0,
        query: dict | None = None,
        timeout: float = 30.0,
    ):
        url = urllib.parse.urlsplit(base_url)
        self.host, self.port = url.hostname, url.port or 80
        self.token = token
        self.query = dict(query or {})
        self.last_id = since
        self.timeout = timeout
        self.seen: list[tuple[int, str, str]] = []
        self.other: list[tuple[str, str]] = []  # (event name, data) of events that carry no order
        self.reconnects = 0
        self.connections = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._connection = None
        self._thread = threading.Thread(target=self._run, name="stream-follower", daemon=True)
        self.lock = threading.Lock()

    def start(self) -> "StreamFollower":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.drop()
        self._thread.join(timeout)

    def drop(self) -> None:
        """Cut the current connection (as a network fault would); the follower reconnects."""
        connection = self._connection
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(2)
            except OSError:
                pass

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Until at least ``count`` events were seen (True), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.seen) >= count:
                return True
            time.sleep(0.02)
        return len(self.seen) >= count

    def ids(self) -> list[int]:
        with self.lock:
            return [event_id for event_id, _, _ in self.seen]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # ValueError: an event whose data is not JSON; recorded, and the stream resumed
                # from the last good id (the thread never dies silently).
                if not self._stop.is_set():
                    self.errors.append(repr(exc))
            if not self._stop.is_set():
                self.reconnects += 1
                time.sleep(0.2)

    def _follow(self) -> None:
        query = dict(self.query)
        headers = {"Authorization": f"Token {self.token}", "Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        path = "/orders/events" + (f"?{urllib.parse.urlencode(query, doseq=True)}" if query else "")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._connection = connection
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                self.errors.append(f"HTTP {response.status}: {response.read()[:200]!r}")
                time.sleep(0.5)
                return
            self.connections += 1
            self._read(response)
        finally:
            self._connection = None
            connection.close()

    def _read(self, response) -> None:
        event_id, name, data = None, "message", []
        while not self._stop.is_set():
            # Through the response, not its raw socket file: uvicorn sends the stream
            # chunked, and a chunk boundary may fall inside a line.
            line = response.readline()
            if not line:
                return  # the server closed the stream
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    self._record(event_id, name, "\n".join(data))
                event_id, name, data = None, "message", []
            elif line.startswith(":"):
                continue  # a heartbeat or a note
            else:
                key, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "id":
                    event_id = value
                elif key == "event":
                    name = value
                elif key == "data":
                    data.append(value)

    def _record(self, event_id, name: str, data: str) -> None:
        if event_id is None:
            self.other.append((name, data))
            return
        order_id = json.loads(data).get("id", "")
        with self.lock:
            self.seen.append((int(event_id), str(order_id), name))
        self.last_id = int(event_id)

    def report(self, expected) -> FollowReport:
        """Compare what was seen with ``expected`` rows ``(event id, order id, event name)``."""
        expected = {int(event_id): (str(order_id), str(name)) for event_id, order_id, name in expected}
        counts = Counter(event_id for event_id, _, _ in self.seen)
        seen = {event_id: (order_id, name) for event_id, order_id, name in self.seen}
        return FollowReport(
            seen=len(self.seen),
            missed=sorted(set(expected) - set(seen)),
            repeated=sorted(event_id for event_id, n in counts.items() if n > 1),
            unexpected=sorted(
                event_id
                for event_id, row in seen.items()
                if event_id not in expected or expected[event_id] != row
            ),
            reconnects=self.reconnects,
        )


def event_log_rows(env: dict, username: str, after: int = 0) -> list[tuple[int, str, str]]:
    """The event log's ``(event id, order id, event name)`` for one client, read with ``manage.py shell``."""
    from bench.common import query

    rows = query(
        env,
        "import json; from orders.models import OrderEvent;"
        f"print(json.dumps([[i, str(o), n] for i, o, n in OrderEvent.objects.filter("
        f"owner__username={username!r}, id__gt={int(after)}).values_list('id', 'order_id', 'name')]))",
    )
    return [(int(i), o, n) for i, o, n in rows]
