"""Many coach processes started together on one empty data folder: one builds the index and
trains the local models while the others wait and reuse them; every process answers, and none
prints a traceback. Damaged model files are retrained, and the lock never outlives its holder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from app.file_lock import LockTimeout, file_lock
from app.index import ArticleIndex
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 8
PER_FILE = 50  # training examples kept per file: the least a guard file accepts


def small_knowledge(target: Path) -> Path:
    """The project's knowledge folder with about 50 examples kept from each training file, so a
    first start trains in seconds; what the processes race for is the same as with the full
    sets."""
    shutil.copytree(ROOT / "knowledge", target)
    for folder in (target / "training", target / "guard"):
        for path in folder.glob("*.yaml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("examples"), list):
                examples = data["examples"]
                data["examples"] = examples[:: max(1, len(examples) // PER_FILE)]
                path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    return env | settings


@dataclass
class Started:
    data: Path
    knowledge: Path
    env: dict[str, str]
    results: list[tuple[int, str, str]]  # exit code, stdout, stderr of each process


@pytest.fixture(scope="module")
def started_together(tmp_path_factory) -> Started:
    """``PROCESSES`` ``coach ask`` processes started at once on an empty data folder."""
    folder = tmp_path_factory.mktemp("together")
    knowledge = small_knowledge(folder / "knowledge")
    data = folder / "data"
    env = clean_env(
        COACH_DATA_DIR=str(data),
        COACH_KNOWLEDGE_DIR=str(knowledge),
        COACH_TRAINING_PATH=str(knowledge / "training"),
    )
    situation = "Our deadlines slip because nobody knows who owns which task on the team."
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ask", situation, "--engine", "offline", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=850) for p in processes]
    results = [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs, strict=True)]
    return Started(data, knowledge, env, results)


@pytest.mark.timeout(900)
def test_processes_started_together_on_an_empty_data_folder_all_answer(started_together):
    for code, out, err in started_together.results:
        assert "Traceback" not in err, err
        assert code == 0, err
        assert '"verdict"' in out
    data = started_together.data
    # One process built the index; the others waited for it and reused it.
    index = ArticleIndex(Settings(data_dir=data, knowledge_dir=started_together.knowledge))
    built = [c.name for c in index.client().list_collections()]
    assert len(built) == 1 and index.is_current()
    assert {p.name for p in data.glob("*.npz")} >= {"classifier.npz", "guard-model.npz"}
    assert not list(data.glob("*.tmp*"))


@pytest.mark.timeout(900)
def test_coach_index_retrains_damaged_and_foreign_model_files(started_together):
    data = started_together.data
    (data / "classifier.npz").write_bytes(b"\x80\x04 not a model" * 40)
    # The classifier's files where the safety detector's belong: a model of another kind.
    shutil.copy(data / "classifier.json", data / "guard-model.json")
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "index"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=started_together.env,
        timeout=600,
    )
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr
    assert "Index is up to date" in out.stdout
    assert "Trained the offline classifier." in out.stdout
    assert "Trained the safety detector." in out.stdout


def test_the_lock_waits_with_a_plain_sentence_and_dies_with_its_holder(tmp_path):
    path = tmp_path / "data" / "index.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from app.file_lock import file_lock\n"
            f"with file_lock(Path(r'{path}'), 'building'):\n"
            "    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout) as caught, file_lock(path, "building the index", wait=0.3):
            pass
        assert str(caught.value) == (
            f"Another coach process has been building the index in {path.parent} for over 0 s: "
            "let it finish (or stop it) and try again."
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    # The kernel dropped the dead holder's lock: nothing stale to clean up.
    with file_lock(path, "building the index", wait=0.3):
        pass


def test_machines_starting_together_on_an_empty_chroma_server_all_answer(tmp_path, chroma_server):
    """Four processes, each with its own data folder (no shared lock, as on four machines),
    build into one empty server at once: the last switch wins and every one of them answers."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    shutil.copy(ROOT / "knowledge" / "management-vs-leadership.md", knowledge)
    common = clean_env(
        COACH_CHROMA_URL=chroma_server.url,
        COACH_COLLECTION="race",
        COACH_KNOWLEDGE_DIR=str(knowledge),
    )
    query = "who decides how the budget is split"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "search", query, "-k", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=common | {"COACH_DATA_DIR": str(tmp_path / f"machine-{i}")},
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]

    for process, (out, err) in zip(processes, outputs, strict=True):
        assert "Traceback" not in err, err
        assert process.returncode == 0, err
        assert "management-vs-leadership#management-3 [M2]" in out
    settings = Settings(
        data_dir=tmp_path / "check",
        knowledge_dir=knowledge,
        chroma_url=chroma_server.url,
        collection="race",
    )
    index = ArticleIndex(settings)
    assert index.is_current() and index.build().built is False
