"""One run per runs directory: an exclusive ``flock`` with the holder's pid, host and start time.

The kernel drops a ``flock`` when its process dies, so a lock left by a killed run is stale by
construction and the next run takes it over; the holder record it left is only read for the
message shown to a second, concurrent run.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from repro.errors import ReproError


class RunsDirBusy(ReproError):
    pass


class RunLock:
    def __init__(self, runs_dir: Path):
        self.path = runs_dir / ".lock"
        self._fh = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except ValueError:
                holder = {}
            fh.close()
            raise RunsDirBusy(
                f"{self.path.parent}: in use by another repro run (pid {holder.get('pid', '?')} on "
                f"host {holder.get('host', '?')}, started {holder.get('started', '?')}); wait for it "
                f"or use another --runs-dir") from None
        from repro.pipeline.diskfull import writing

        try:
            with writing("the run lock's holder record", self.path):
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
                fh.flush()
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
