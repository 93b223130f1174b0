"""Prepared crop caches shared through a store (a local folder or ``s3://``), so a fresh GPU worker downloads
a cache instead of decoding every frame again.

Under the share's URI each cache is ``crops-<key>/{crops.bin, rows.npy, index.json}``, the same layout as on
disk; ``index.json`` goes up last, so a cache is visible only once complete. A share is an optimisation: when
it is unreachable the cache is prepared (or kept) locally and the run goes on, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from handgesture.data.cache import CHECK_ERRORS, INDEX, CacheSettings, check_folder
from handgesture.data.cache_layout import data_files
from handgesture.errors import ObjectNotFoundError, StorageError
from handgesture.storage import Store

log = logging.getLogger(__name__)


class CacheShare:
    def __init__(self, store: Store):
        self.store = store
        self._corrupt: set[str] = set()  # shared copies that failed verification: replaced on publish

    def fetch(self, folder: Path, key: str, settings: CacheSettings, samples) -> dict | None:
        """Download the shared copy of ``folder``, check it against this run's ``settings`` and ``samples``
        and move it into place; None when there is none or it is unusable (then it is prepared locally)."""
        name = folder.name
        try:
            index = json.loads(self.store.get_bytes(f"{name}/{INDEX}"))
        except ObjectNotFoundError:
            return None
        except (StorageError, OSError, ValueError, RecursionError) as exc:
            log.warning("Crop cache share %s: cannot read %s (%s); preparing locally", self.store, name, exc)
            return None
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        try:
            log.info("Downloading crop cache %s from %s", name, self.store.uri(name))
            for file in data_files(index):  # a sharded cache's parts too (names checked)
                (tmp / file).parent.mkdir(parents=True, exist_ok=True)
                self.store.get_file(f"{name}/{file}", tmp / file)
            (tmp / INDEX).write_text(json.dumps(index, indent=1))
            # Checked before it replaces anything: a forged copy is self-consistent, but not our data.
            checked = check_folder(tmp, key, settings, samples)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
            return checked
        except (StorageError, OSError) as exc:
            log.warning(
                "Crop cache share %s: download of %s failed (%s); preparing locally", self.store, name, exc
            )
        except CHECK_ERRORS as exc:
            log.warning(
                "Crop cache %s from share %s failed verification (%s); preparing locally",
                name,
                self.store,
                exc,
            )
            self._corrupt.add(name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return None

    def publish(self, folder: Path) -> None:
        """Upload ``folder`` unless the share already holds a good copy: data files first, the index last."""
        name = folder.name
        try:
            if name not in self._corrupt and self.store.exists(f"{name}/{INDEX}"):
                return
            log.info("Uploading crop cache %s to %s", name, self.store.uri(name))
            for file in (*data_files(json.loads((folder / INDEX).read_text())), INDEX):
                self.store.put_file(folder / file, f"{name}/{file}")
        except (StorageError, OSError, ValueError) as exc:
            log.warning("Crop cache share %s: upload of %s failed (%s); kept locally", self.store, name, exc)
