"""Benchmarks: measured against the native ceilings of the same machine, in the same run."""

import json
import shutil
from pathlib import Path


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
