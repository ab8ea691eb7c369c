"""What `make bench` and `make chaos` share: managed processes, manage.py calls, the invariant check."""

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
UVICORN = str(ROOT / ".venv" / "bin" / "uvicorn")


class ProcessGroup:
    """A process and its children in a process group of their own, logging to /tmp."""

    def __init__(self, name: str, argv: list[str], env: dict):
        self.name, self.argv, self.env = name, argv, env
        self.process = None

    def start(self) -> "ProcessGroup":
        logfile = open(f"/tmp/orders-{self.name}.log", "a")
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL for whatever is left (workers, stuck calls)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)


def child_pid(parent: int, marker: str) -> int | None:
    """The pid of a child of ``parent`` whose command line holds ``marker`` (pgrep), if any."""
    found = subprocess.run(["pgrep", "-P", str(parent), "-f", marker], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.stdout.split() else None


def run_manage(env: dict, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run a manage.py command to its end, its output captured as text."""
    return subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, check=check, text=True, capture_output=True
    )


def manage(env: dict, *args: str) -> str:
    """Run a manage.py command; return its standard output (CalledProcessError if it fails)."""
    return run_manage(env, *args, check=True).stdout


def query(env: dict, code: str):
    """Run Python in `manage.py shell` and return the JSON it prints last."""
    return json.loads(manage(env, "shell", "-v0", "-c", code).strip().splitlines()[-1])


def api_token(env: dict, username: str) -> str:
    return manage(
        env,
        "shell",
        "-v0",
        "-c",
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
        f"u,_=User.objects.get_or_create(username={username!r});"
        "print(Token.objects.get_or_create(user=u)[0].key)",
    ).split()[-1]


def check_invariants(env: dict, label_width: int = 22) -> bool:
    """Run `manage.py check_invariants`, print its verdict and findings, return whether it was clean."""
    check = run_manage(env, "check_invariants", "--limit", "20")
    print(f"{'check_invariants':<{label_width}}: {'clean' if check.returncode == 0 else 'VIOLATIONS'}")
    for line in (check.stdout + check.stderr).strip().splitlines()[:25]:
        print(f"  {line}")
    return check.returncode == 0


def cpu_seconds(pid: int) -> float:
    """CPU time of one process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# What each process of the service and the bench shows in its command line, in the order
# they are looked for (the applier's command line names run_gateway's settings too).
ROLES = (
    ("apply_venue_reports", "applier"),
    ("run_gateway", "gateway"),
    ("run_venue", "venue"),
    ("qcluster", "cluster"),
    ("gunicorn", "web"),
    ("uvicorn", "web"),
    ("mariadbd", "MariaDB"),
    ("mysqld", "MariaDB"),
    ("wrk", "wrk"),
)


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of every process on the machine with a role in ROLES, summed per role."""
    totals: dict[str, float] = {}
    commands = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                commands[pid] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    for pid, command in commands.items():
        if "multiprocessing" in command:
            # A spawned child (uvicorn's workers) shows only multiprocessing's own
            # command line: it has its parent's role.
            command = commands.get(_parent(pid), command)
        role = next((name for marker, name in ROLES if marker in command), None)
        if role is not None:
            totals[role] = totals.get(role, 0.0) + cpu_seconds(int(pid))
    return totals


def _parent(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return ""


def db_questions(env: dict) -> int:
    """Statements the database server has run so far (its global ``Questions``)."""
    return query(
        env,
        (
            "import json; from django.db import connection; c=connection.cursor();"
            "c.execute(\"SHOW GLOBAL STATUS LIKE 'Questions'\"); print(json.dumps(int(c.fetchone()[1])))"
        ),
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
