"""Refuse a first install that cannot fit, before pip fills the disk and fails halfway with Errno 28.

The pinned dependencies take about 6.3 GB in .venv (PyTorch with CUDA), and pip unpacks wheels through the
temporary folder, so both need room; where they share a disk, it needs room for both. Standard library only:
it runs before the virtualenv exists.
"""

import os
import shutil
import sys
import tempfile

NEEDED_GB = {".": 7.0, tempfile.gettempdir(): 1.0}


def main() -> int:
    needed_by_disk: dict[int, list[str]] = {}
    for place in NEEDED_GB:
        needed_by_disk.setdefault(os.stat(place).st_dev, []).append(place)
    short = []
    for places in needed_by_disk.values():
        needed = sum(NEEDED_GB[place] for place in places)
        free = shutil.disk_usage(places[0]).free / 1e9
        if free < needed:
            where = " and ".join(places)
            short.append(f"{where}: {free:.1f} GB free, the install needs about {needed:.0f} GB")
    if short:
        heading = "not enough disk space for .venv and the pinned dependencies:"
        print(heading, *short, sep="\n  ", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
