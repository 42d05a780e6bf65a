"""Benchmarks: measured against the native ceilings of the same machine, in the same run."""

import json
import os
import shutil
import threading
import time
from pathlib import Path


def exit_with_parent(every_s: float = 0.5) -> None:
    """End this process when the one that started it is gone: a bench (or a test around it) killed on
    a timeout must not leave its senders, roles and busy neighbours running (they skewed every later
    measurement on the machine)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class KeptData:
    """A data set kept between runs in `workdir` (generating 200 million rows takes minutes): `fresh`
    when the directory does not hold data made for `manifest` (it is then emptied, to be filled and
    marked with `done()`)."""

    def __init__(self, workdir: Path, manifest: dict):
        self.marker, self.manifest = workdir / "manifest.json", manifest
        self.fresh = not (self.marker.exists() and json.loads(self.marker.read_text()) == manifest)
        if self.fresh:
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)

    def done(self) -> None:
        self.marker.write_text(json.dumps(self.manifest))
