"""`cirlib synth` never loses data, repairs damaged benchmarks, and is safe to run twice at once.

Faults are real: foreign files and records, truncated and bit-flipped files, concurrent processes, and
SIGKILL at seeded random moments. Where the point does not need the ``tiny`` preset, an even smaller
SynthConfig (about a second per build) stands in for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.cli import main
from cirlib.data.synth.build import GENERATOR_VERSION, build_benchmark
from cirlib.data.synth.config import SplitSize, SynthConfig
from cirlib.util.errors import ConfigError, FileError
from cirlib.util.locks import folder_lock

REPO = Path(__file__).resolve().parents[2]
LOCK = ".cirlib.lock"
# `cirlib synth` (prepare_benchmark) of a tiny config in a subprocess: argv = out, config JSON, "overwrite" or "keep".
TINY_SYNTH = """
import json, sys
from cirlib.analysis.benchmark import prepare_benchmark
from cirlib.data.synth.config import SplitSize, SynthConfig
from cirlib.util.errors import CirlibError
fields = json.loads(sys.argv[2])
fields["fashioniq"] = {split: SplitSize(**size) for split, size in fields["fashioniq"].items()}
try:
    prepare_benchmark(sys.argv[1], SynthConfig(**fields), workers=1, overwrite=sys.argv[3] == "overwrite")
except CirlibError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
"""
WAITING = "waiting for another cirlib process"


def tiny(seed: int = 0, gallery: int = 12, cirr_train: int = 12) -> SynthConfig:
    """A benchmark of ~260 files, built in about a second."""
    return SynthConfig(seed=seed, size="tiny",
                       fashioniq={"train": SplitSize(gallery, 6), "val": SplitSize(gallery, 6),
                                  "test": SplitSize(6, 3)},
                       cirr_images={"train": cirr_train, "val": 12, "test1": 6}, cirr_family_size=6,
                       cirr_queries_per_set=4, circo_gallery=30, circo_queries={"val": 4, "test": 2})


def digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A real process whose stdout and stderr go to ``log``."""
    with open(log, "w") as handle:
        return subprocess.Popen(args, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)


def synth_cli(out: Path, log: Path, *args: str) -> subprocess.Popen:
    """`python -m cirlib.cli synth --size tiny` into ``out``."""
    return start([sys.executable, "-m", "cirlib.cli", "synth", "--out", str(out), "--size", "tiny", *args], log)


def tiny_synth(out: Path, config: SynthConfig, mode: str, log: Path) -> subprocess.Popen:
    return start([sys.executable, "-c", TINY_SYNTH, str(out), json.dumps(asdict(config)), mode], log)


def finish(process: subprocess.Popen, log: Path, timeout: float = 120) -> tuple[int, str]:
    """(exit status, output) of a process."""
    return process.wait(timeout=timeout), log.read_text()


def wait_for(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{log} never said {text!r}: {log.read_text()[-500:]}"
        time.sleep(0.05)


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_foreign_folders_and_records_are_refused_and_nothing_is_deleted(tmp_path, capsys):
    folder = tmp_path / "P"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "thesis.tex").write_text("x\n")
    (folder / "manifest.json").write_text('{"config":{"name":"a"}}\n')
    before = digest(folder)
    assert main(["synth", "--out", str(folder), "--size", "tiny", "--overwrite"]) == 2
    err = one_line_error(capsys)
    assert "manifest.json" in err and "not written by cirlib synth" in err and "nothing was deleted" in err
    assert digest(folder) == before, "nothing deleted, and no lock file written into a folder that is refused"

    (folder / "manifest.json").unlink()
    assert main(["synth", "--out", str(folder), "--size", "tiny", "--overwrite"]) == 2
    err = one_line_error(capsys)
    assert str(folder) in err and "did not create it" in err and "Fix: choose an empty or new --out folder" in err
    assert sorted(os.listdir(folder)) == ["src"] and (folder / "src" / "thesis.tex").read_text() == "x\n"

    a_file = tmp_path / "file"
    a_file.write_text("mine")
    assert main(["synth", "--out", str(a_file), "--size", "tiny"]) == 2
    assert "is a file, not a folder" in one_line_error(capsys) and a_file.read_text() == "mine"

    only_lock = tmp_path / "locked"
    only_lock.mkdir()
    (only_lock / LOCK).touch()
    build_benchmark(only_lock, tiny())
    assert (only_lock / "manifest.json").is_file(), "the lock file alone does not make a folder foreign"


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny benchmark with datacards, seed 0; tests work on copies of it."""
    out = tmp_path_factory.mktemp("tiny") / "b"
    prepare_benchmark(out, tiny())
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "b"))


@pytest.mark.parametrize("record, damage", [("manifest.json", "truncated"), ("manifest.json", "empty object"),
                                            ("manifest.json", "not utf-8"), ("manifest.json", "bad file entries"),
                                            (".building.json", "empty object")])
def test_a_damaged_or_foreign_record_is_a_one_line_error_naming_it(tiny_benchmark, tmp_path, record, damage):
    out = copy_of(tiny_benchmark, tmp_path)
    text = (out / "manifest.json").read_bytes()
    damaged = {"truncated": text[: len(text) // 2], "empty object": b"{}", "not utf-8": b"\x80{}",
               "bad file entries": json.dumps({**json.loads(text), "files": {"a.png": 3}}).encode()}[damage]
    (out / record).write_bytes(damaged)
    before = digest(out)
    with pytest.raises(FileError) as caught:
        build_benchmark(out, tiny(seed=1), overwrite=True)
    assert caught.value.path == out / record and "\n" not in str(caught.value)
    assert "not written by cirlib synth" in str(caught.value)
    assert digest(out) == before


def test_overwrite_removes_exactly_the_files_of_the_previous_benchmark(tmp_path, capsys):
    out = tmp_path / "b"
    first = build_benchmark(out, tiny(seed=0, gallery=16, cirr_train=12))
    assert (out / "synth-cirr" / "train" / "1").is_dir()
    foreign = {"notes.txt": "mine", "synth-fashioniq/images/mine.png": "not an image", "extra/deep/x.txt": "deep"}
    for relative, text in foreign.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    # A list naming paths outside the folder, or the records, must not make cirlib delete them.
    entry = {"size": 7, "sha256": hashlib.sha256(b"keep me").hexdigest()}
    listed = {**first["files"], "../outside.txt": entry, str(outside): entry, "manifest.json": entry}
    (out / "manifest.json").write_text(json.dumps({**first, "files": listed}))

    with pytest.raises(FileError, match="--overwrite"):
        build_benchmark(out, tiny(seed=1, gallery=8, cirr_train=6))
    second = build_benchmark(out, tiny(seed=1, gallery=8, cirr_train=6), overwrite=True)
    assert f"removed the {len(first['files'])} files" in capsys.readouterr().out

    remaining = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert remaining == set(second["files"]) | set(foreign) | {"manifest.json", LOCK}
    assert {relative: (out / relative).read_text() for relative in foreign} == foreign
    assert outside.read_text() == "keep me"
    assert not (out / "synth-cirr" / "train" / "1").exists(), "a folder the old benchmark left empty is removed"
    assert len(set(first["files"]) - set(second["files"])) > 40, "the old benchmark had files the new one lacks"
    assert manifest_of(out)["config"]["seed"] == 1 and not (out / ".building.json").exists()


def test_an_older_manifest_is_upgraded_with_the_same_config_and_refused_with_another(tiny_benchmark, tmp_path):
    out = copy_of(tiny_benchmark, tmp_path)
    manifest = manifest_of(out)
    old = {key: value for key, value in manifest.items() if key != "files"}
    (out / "manifest.json").write_text(json.dumps(old))
    image = out / "synth-fashioniq" / "images" / "dress-val-00003.png"
    inode = image.stat().st_ino
    assert build_benchmark(out, tiny()) == manifest
    assert image.stat().st_ino == inode, "images on disk are kept, not rendered again"

    (out / "manifest.json").write_text(json.dumps(old))
    before = digest(out)
    with pytest.raises(FileError, match="remove the folder yourself") as caught:
        build_benchmark(out, tiny(seed=2), overwrite=True)
    assert "older cirlib" in str(caught.value) and caught.value.path == out / "manifest.json"
    assert digest(out) == before


def test_missing_truncated_and_flipped_images_are_repaired_to_the_same_bytes(small_benchmark, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(small_benchmark[0], out)
    expected = digest(out)
    images = sorted((out / "synth-cirr" / "dev").glob("*.png"))
    missing, truncated, flipped = images[3], images[10], images[20]
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:100])
    assert main(["synth", "--out", str(out), "--size", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "2 of its 2176 files are missing or damaged" in printed and "repaired 2 file(s)" in printed
    assert f"{missing.name}: missing" in printed and f"{truncated.name}: 100 bytes" in printed
    assert digest(out) == expected, "the repaired files, and the manifest, are byte-identical to the original"

    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    assert main(["synth", "--out", str(out), "--size", "tiny"]) == 0
    assert "repair" not in capsys.readouterr().out and flipped.read_bytes() == bytes(data), "same size: not seen"
    assert main(["synth", "--out", str(out), "--size", "tiny", "--verify"]) == 0
    printed = capsys.readouterr().out
    assert f"1 of its 2176 files are missing or damaged ({flipped.relative_to(out)}: sha256 differs)" in printed
    assert "repaired 1 file(s)" in printed and digest(out) == expected


def test_a_file_that_keeps_failing_after_repair_is_named(tiny_benchmark, tmp_path):
    out = copy_of(tiny_benchmark, tmp_path)
    manifest = manifest_of(out)
    relative = "synth-cirr/cirr/captions/cap.rc2.val.json"
    wrong = {**manifest["files"], relative: {**manifest["files"][relative], "sha256": "0" * 64}}
    (out / "manifest.json").write_text(json.dumps({**manifest, "files": wrong}))
    assert build_benchmark(out, tiny())["files"] == wrong, "sizes agree: reused without --verify"
    for _ in range(2):  # it keeps failing: the next run checks against the same manifest again
        with pytest.raises(FileError, match="still differs from its entry in manifest.json") as caught:
            build_benchmark(out, tiny(), verify=True)
        assert caught.value.path == out / relative and "\n" not in str(caught.value)


def test_two_identical_concurrent_builds_both_succeed_with_the_files_of_one_build(tiny_benchmark, tmp_path):
    out, logs = tmp_path / "shared", [tmp_path / "a.log", tmp_path / "b.log"]
    with folder_lock(out, "the test", wait=False):  # both processes queue, then race for the lock
        processes = [tiny_synth(out, tiny(), "keep", log) for log in logs]
        for log in logs:
            wait_for(log, WAITING)
    results = [finish(process, log) for process, log in zip(processes, logs)]
    assert [code for code, _ in results] == [0, 0], results
    assert digest(out) == digest(tiny_benchmark)


def test_a_concurrent_build_and_overwrite_end_with_one_verified_benchmark(tmp_path):
    out, reference, logs = tmp_path / "shared", tmp_path / "reference", [tmp_path / "0.log", tmp_path / "1.log"]
    with folder_lock(out, "the test", wait=False):
        seed0 = tiny_synth(out, tiny(seed=0), "keep", logs[0])
        seed1 = tiny_synth(out, tiny(seed=1), "overwrite", logs[1])
        for log in logs:
            wait_for(log, WAITING)
    (code0, log0), (code1, log1) = finish(seed0, logs[0]), finish(seed1, logs[1])
    assert code1 == 0, log1
    # Whichever took the lock first: seed 0, then seed 1 replaces it; or seed 1, then seed 0 is refused.
    assert code0 == 0 or (code0 == 2 and "pass --overwrite to replace it" in log0), log0
    prepare_benchmark(reference, tiny(seed=1))
    assert manifest_of(out)["config"]["seed"] == 1
    assert prepare_benchmark(out, tiny(seed=1), verify=True) == manifest_of(reference)
    assert digest(out) == digest(reference)


def test_sigkill_at_random_moments_then_a_rerun_gives_the_files_of_an_uninterrupted_build(small_benchmark, tmp_path):
    out, log, rng, codes = tmp_path / "killed", tmp_path / "synth.log", random.Random(20261128), []
    for workers in ("1", "2", "2"):
        process = synth_cli(out, log, "--workers", workers)
        time.sleep(rng.uniform(0.8, 3.5))
        process.send_signal(signal.SIGKILL)
        codes.append(finish(process, log)[0])
    assert codes[0] == -signal.SIGKILL, "the first build was killed mid-way"
    assert -signal.SIGKILL in codes[1:], "a resumed build was killed too"
    code, output = finish(synth_cli(out, log, "--workers", "2"), log)
    assert code == 0, output[-500:]
    assert digest(out) == digest(small_benchmark[0]), "no leftover temporary file, every byte as an uninterrupted build"


@pytest.mark.parametrize("workers", ["-1", "0"])
def test_bad_workers_are_refused_before_anything_is_written(tmp_path, capsys, workers):
    out = tmp_path / "new"
    assert main(["synth", "--out", str(out), "--size", "tiny", "--workers", workers]) == 2
    assert "--workers" in one_line_error(capsys) and not out.exists()
    with pytest.raises(ConfigError, match="'workers'"):
        build_benchmark(out, tiny(), workers=int(workers))
    assert not out.exists()


def test_the_manifest_lists_every_file_with_its_size_and_sha256(small_benchmark):
    out, manifest = small_benchmark
    on_disk = digest(out)
    assert set(on_disk) == set(manifest["files"]) | {"manifest.json", LOCK}
    assert all(on_disk[p] == e["sha256"] and (out / p).stat().st_size == e["size"]
               for p, e in manifest["files"].items())
    assert manifest["generator"] == GENERATOR_VERSION and "synth-cirr/datacard.md" in manifest["files"]
