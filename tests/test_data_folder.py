"""The data folder's write check, when many processes or threads start on one folder at once."""

from __future__ import annotations

import threading

from app.settings import Settings


def test_many_starts_at_once_all_find_the_folder_writable(tmp_path) -> None:
    """Every start checks the folder can be written; no check may trip over another's."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_data_dir()
    errors: list[Exception] = []
    start = threading.Barrier(20)

    def start_up() -> None:
        start.wait()
        try:
            for _ in range(200):
                settings.ensure_data_dir()
        except Exception as exc:  # collected, so the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=start_up) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list((tmp_path / "data").iterdir()) == []  # the checks leave nothing behind
