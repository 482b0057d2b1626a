"""Raw data for bundles that need it: from Kaggle (the kaggle package) or copied from a folder.

Raw files land in <cache>/raw/<bundle>/ and are what the bundle's `prepare` command reads
(`{raw}` in its arguments). Nothing is ever written into the project.
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import CtxevalError
from ..paths import cache_dir
from .manifest import Bundle

KAGGLE_RULES_URL = "https://www.kaggle.com/competitions/{slug}/rules"


def raw_dir(bundle: Bundle) -> Path:
    return cache_dir() / "raw" / bundle.base_id  # raw files are the base bundle's, shared by its variants


def missing_raw_files(bundle: Bundle) -> list[str]:
    if bundle.data is None or bundle.data.fetch is None:
        return []
    return [name for name in bundle.data.fetch.files if not (raw_dir(bundle) / name).is_file()]


def _unzip_all(folder: Path) -> None:
    """Kaggle serves a zip that may hold zips (train.csv.zip): unpack until none is left."""
    for _ in range(3):
        archives = list(folder.rglob("*.zip"))
        if not archives:
            return
        for archive in archives:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    target = (archive.parent / member).resolve()
                    if not str(target).startswith(str(archive.parent.resolve())):
                        raise CtxevalError(f"{archive.name}: refusing member outside the folder: {member}")
                zf.extractall(archive.parent)
            archive.unlink()


def _from_kaggle(slug: str, dest: Path) -> None:
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:  # pragma: no cover - kaggle is a dependency
        raise CtxevalError(f"the kaggle package is not installed: {exc}") from None
    api = KaggleApi()
    try:
        api.authenticate()
    except (SystemExit, Exception) as exc:
        raise CtxevalError("Kaggle credentials not found: put your API token in ~/.kaggle/kaggle.json or set "
                           f"KAGGLE_USERNAME and KAGGLE_KEY ({exc})") from None
    try:
        api.competition_download_files(slug, path=str(dest), quiet=True)
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 403:
            raise CtxevalError(f"Kaggle refused the download (403): accept the competition's rules first at "
                               f"{KAGGLE_RULES_URL.format(slug=slug)} (signed in as the account of your "
                               "token), then fetch again") from None
        if status == 401:
            raise CtxevalError("Kaggle rejected the credentials (401): check ~/.kaggle/kaggle.json or "
                               "KAGGLE_USERNAME/KAGGLE_KEY") from None
        raise CtxevalError(f"downloading Kaggle competition {slug!r} failed: {exc}") from None
    _unzip_all(dest)


def fetch_raw(bundle: Bundle, from_dir: Path | None = None) -> Path:
    """Put the bundle's raw files in its raw folder; every listed file must arrive."""
    if bundle.data is None or bundle.data.fetch is None:
        raise CtxevalError(f"bundle {bundle.id!r} declares no raw data to fetch (data.fetch)")
    spec = bundle.data.fetch
    target = raw_dir(bundle)
    with tempfile.TemporaryDirectory(prefix="ctxeval-fetch-") as tmp:
        staging = Path(tmp)
        if from_dir is not None:
            source = Path(from_dir)
            if not source.is_dir():
                raise CtxevalError(f"--from {source}: not a folder")
            for name in spec.files:
                candidates = [source / name, source / f"{name}.zip"]
                found = next((c for c in candidates if c.is_file()), None)
                if found is None:
                    raise CtxevalError(f"--from {source}: missing raw file {name}")
                shutil.copy(found, staging / found.name)
            _unzip_all(staging)
        else:
            if not spec.kaggle:
                raise CtxevalError(f"bundle {bundle.id!r} has no Kaggle source: use --from DIR")
            _from_kaggle(spec.kaggle, staging)
        missing = [name for name in spec.files if not (staging / name).is_file()]
        if missing:
            raise CtxevalError(f"the raw data lacks {', '.join(missing)}")
        target.mkdir(parents=True, exist_ok=True)
        for name in spec.files:
            shutil.copy(staging / name, target / name)
    return target
