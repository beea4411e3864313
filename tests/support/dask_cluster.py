"""A dask.distributed cluster on 127.0.0.1 for tests: a scheduler and
single-threaded worker processes, each in a working directory of its own (as
on a real cluster), no dashboards, no nannies.

    with DaskCluster(tmp_path, workers=2) as cluster:
        cluster.address  ->  tcp://127.0.0.1:PORT
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


class DaskCluster:
    def __init__(self, root: Path, workers: int = 2) -> None:
        self.root = root
        self.workers = workers
        self.address = ""
        self._processes: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str]) -> None:
        cwd = self.root / name
        cwd.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{name}.log").open("w")
        env = dict(os.environ)  # tests/ on the path: support.* imports there
        tests = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [tests, env.get("PYTHONPATH")])
        )
        self._processes.append(
            subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )

    def __enter__(self) -> DaskCluster:
        scheduler_file = self.root / "scheduler.json"
        self._start(
            "scheduler",
            [
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
        )
        try:
            self.address = self._wait_for_file(scheduler_file)["address"]
            for i in range(self.workers):
                self._start(
                    f"worker{i}",
                    [
                        "distributed.cli.dask_worker",
                        self.address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--local-directory",
                        str(self.root / f"worker{i}" / "dask"),
                    ],
                )
            self._wait_for_workers()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for_file(self, path: Path) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size:
                return json.loads(path.read_text())
            if self._processes[0].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"no dask scheduler: {self.logs()}")

    def _wait_for_workers(self) -> None:
        import dask.distributed

        with dask.distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(self.workers, timeout=60)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.root.glob("*.log")))

    def __exit__(self, *exc) -> None:
        for process in reversed(self._processes):
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
