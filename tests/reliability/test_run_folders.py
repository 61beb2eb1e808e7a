"""Training run folders (cirlib.train.run_folder) for the three trainers, fusion, pretraining and inversion:
a folder held by another process, refusal of an existing run without --resume/--overwrite, what --overwrite
deletes, resume across spellings of out and devices, no-op resumes that write nothing, damaged checkpoints
for resume and eval, eval's feature cache location, and a SIGKILL at a seeded moment followed by a resume."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cirlib.inversion import Pic2WordConfig, train_pic2word
from cirlib.inversion.loop import CHECKPOINT as INVERSION_CHECKPOINT
from cirlib.inversion.loop import INVERSION_FILES
from cirlib.train.checkpoint import read_record, save_checkpoint
from cirlib.train.pretrain import PRETRAIN_RUN, PretrainConfig, pretrain
from cirlib.train.stage2 import BEST, FUSION_RUN, LAST, FusionTrainConfig, load_trained_fusion, train_fusion
from cirlib.util.errors import BusyError, CirlibError, FileError
from cirlib.util.locks import LOCK_NAME
from tests.helpers import TINY_CLIP, tiny_model_dir
from tests.test_train import toy_task, validation

REPO = Path(__file__).resolve().parents[2]
SEED = 20240611
FUSION = {"fusion": "combiner", "fusion_options": {"projection_dim": 16, "hidden_dim": 16, "dropout": 0.1},
          "epochs": 3, "batch_size": 100, "lr": 3e-3, "selection_metric": "R@1", "device": "cpu"}


@dataclasses.dataclass
class Trainer:
    """One trainer at a tiny size: run it, make it crash at a step, and what it writes."""

    config: object                       # a config whose ``out`` is replaced per test
    run: object                          # run(config, resume, overwrite)
    crash_target: str                    # the per-step (per-epoch) function to make raise
    crash_argument: int                  # which argument of it is the step (epoch)
    checkpoint: str
    files: tuple[str, ...]
    unit: str
    total: int

    def at(self, out: Path, **changes):
        return dataclasses.replace(self.config, out=str(out), **changes)

    def train(self, out: Path, resume: bool = False, overwrite: bool = False, **changes):
        return self.run(self.at(out, **changes), resume, overwrite)

    def crash(self, monkeypatch: pytest.MonkeyPatch, out: Path, at: int, overwrite: bool = False) -> None:
        """Train into ``out``, interrupted (KeyboardInterrupt) when step (epoch) ``at`` starts."""
        module, name = self.crash_target.rsplit(".", 1)
        real = getattr(sys.modules[module], name)

        def dies(*args):
            if args[self.crash_argument] == at:
                raise KeyboardInterrupt
            return real(*args)
        with monkeypatch.context() as patch:
            patch.setattr(sys.modules[module], name, dies)
            with pytest.raises(KeyboardInterrupt):
                self.train(out, overwrite=overwrite)


def _fusion(config, resume, overwrite):
    train, held_out = toy_task()
    return train_fusion(config, train, validation(held_out), resume=resume, overwrite=overwrite, progress=False)


@pytest.fixture(scope="module")
def trainers(tmp_path_factory) -> dict[str, Trainer]:
    model, _ = tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")
    cache = tmp_path_factory.mktemp("cache")
    pretraining = PretrainConfig(model=json.loads(json.dumps(TINY_CLIP)), steps=4, batch_size=16, lr=2e-3,
                                 warmup_steps=1, pool_size=32, eval_pairs=16, eval_every=2, checkpoint_every=2,
                                 device="cpu", workers=1)
    inversion = Pic2WordConfig(model=str(model), cache=str(cache), train_pairs=32, batch_size=16, steps=4, lr=1e-2,
                               phi_dropout=0.0, log_every=1000, checkpoint_every=2, device="cpu", workers=1)
    return {
        "fusion": Trainer(FusionTrainConfig(**FUSION), _fusion, "cirlib.train.stage2.reseed", 1, LAST,
                          FUSION_RUN.files, "epoch", 3),
        "pretrain": Trainer(pretraining, lambda c, r, o: pretrain(c, resume=r, overwrite=o),
                            "cirlib.train.pretrain.learning_rate", 0, PRETRAIN_RUN.checkpoint, PRETRAIN_RUN.files,
                            "step", 4),
        "pic2word": Trainer(inversion, lambda c, r, o: train_pic2word(c, resume=r, overwrite=o),
                            "cirlib.inversion.loop.step_seed", 1, INVERSION_CHECKPOINT, INVERSION_FILES, "step", 4),
    }


KINDS = ["fusion", "pretrain", "pic2word"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first and first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), [k for k in first if not torch.equal(first[k],
                                                                                                     second[k])]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (but the lock): its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# ---- locking -------------------------------------------------------------------------------------------------

HOLDER = """
import sys
from cirlib.util.locks import folder_lock
with folder_lock(sys.argv[1], "the training run", wait=False):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_held_by_another_process_is_refused_at_once(trainers, kind, tmp_path):
    trainer, out = trainers[kind], tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with pytest.raises(BusyError) as error:
            trainer.train(out)
        assert time.perf_counter() - started < 5  # at once: no waiting, nothing trained
        assert "another cirlib process is writing the training run" in one_line(error.value)
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


TRAIN_IN_SUBPROCESS = """
import json, sys, time
from cirlib.train.stage2 import FusionTrainConfig, train_fusion
from tests.test_train import toy_task, validation
train, held_out = toy_task()
validate = validation(held_out)

def slow_validate(model):  # at least 0.25 s an epoch, so that the kill falls inside the run on any machine
    time.sleep(0.25)
    return validate(model)
train_fusion(FusionTrainConfig(**json.loads(sys.argv[1])), train, slow_validate, progress=False)
"""


def test_sigkill_at_a_seeded_moment_then_resume_equals_an_uninterrupted_run(tmp_path):
    """A second job into the running job's folder is refused; the running job, killed at a seeded random moment
    (SIGKILL: no cleanup), resumes to the very weights of an uninterrupted run."""
    settings = FUSION | {"epochs": 6, "batch_size": 50}
    out = tmp_path / "killed"
    job = subprocess.Popen([sys.executable, "-c", TRAIN_IN_SUBPROCESS, json.dumps(settings | {"out": str(out)})],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert job.stdout.readline().startswith("train config:")  # printed inside the held folder
        with pytest.raises(BusyError):
            _fusion(FusionTrainConfig(**settings | {"out": str(out), "seed": 1}), False, False)
        assert job.stdout.readline().startswith('{"epoch": 1')
        started = time.perf_counter()  # one epoch's length, measured between two epoch lines (load changes it)
        assert job.stdout.readline().startswith('{"epoch": 2')
        epoch_seconds = time.perf_counter() - started
        rng = random.Random(SEED)
        for _ in range(rng.randrange(0, 2)):  # then kill at a random moment of epoch 3 or 4
            assert job.stdout.readline().startswith('{"epoch"')
        time.sleep(rng.uniform(0, 1) * epoch_seconds)
        job.send_signal(signal.SIGKILL)
    finally:
        job.kill()
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL
    killed_at = read_record(out / LAST)["epoch"] if (out / LAST).exists() else 0
    _fusion(FusionTrainConfig(**settings | {"out": str(out)}), True, False)
    _fusion(FusionTrainConfig(**settings | {"out": str(tmp_path / "whole")}), False, False)
    assert killed_at < 6 and read_record(out / LAST)["epoch"] == 6
    assert_same_weights(out / LAST, tmp_path / "whole" / LAST)
    assert_same_weights(out / BEST, tmp_path / "whole" / BEST)
    strip = lambda log: [{k: v for k, v in row.items() if k != "seconds"} for row in log]  # noqa: E731
    logs = [json.loads((folder / "log.json").read_text())["log"] for folder in (out, tmp_path / "whole")]
    assert strip(logs[0]) == strip(logs[1])


# ---- refusing, replacing and continuing what a folder holds ---------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_finished_run_is_refused_then_replaced_by_overwrite_which_keeps_other_files(trainers, kind, tmp_path,
                                                                                      monkeypatch):
    trainer, out = trainers[kind], tmp_path / "run"
    trainer.train(out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    with pytest.raises(FileError) as error:
        trainer.train(out, seed=1)
    message = one_line(error.value)
    assert f"holds a finished run, {trainer.unit} {trainer.total} of {trainer.total}" in message
    assert "--resume" in message and "--overwrite" in message and "--out" in message
    assert snapshot(out) == before
    with pytest.raises(CirlibError, match="pass one of them"):
        trainer.train(out, resume=True, overwrite=True)
    (out / "model").mkdir(exist_ok=True)
    (out / "model" / "README").write_text("mine too")
    trainer.crash(monkeypatch, out, at=0, overwrite=True)  # replaced, then stopped before writing anything new
    left = {str(p.relative_to(out)) for p in out.rglob("*")}
    written_first = {"config.json"} if kind != "fusion" else set()  # written when the job starts
    assert left == {LOCK_NAME, "notes.txt", "model", "model/README"} | written_first
    assert set(before) - {"notes.txt"} <= set(trainer.files)  # what was removed: the trainer's files, by name


def test_an_unfinished_run_is_refused_with_its_progress(trainers, tmp_path, monkeypatch):
    trainer, out = trainers["pretrain"], tmp_path / "run"
    trainer.crash(monkeypatch, out, at=3)
    with pytest.raises(FileError, match="holds an unfinished run at step 2 of 4. Fix: pass --resume"):
        trainer.train(out)


def test_a_folder_of_other_files_is_refused_even_to_resume_and_a_lock_file_alone_is_not(trainers, tmp_path):
    trainer, out = trainers["fusion"], tmp_path / "theirs"
    out.mkdir()
    (out / "data.csv").write_text("1,2\n")
    for resume, overwrite in ((False, False), (True, False), (False, True)):
        with pytest.raises(FileError, match=r"holds files that are not a cirlib fusion training run \(data.csv\)"):
            trainer.train(out, resume=resume, overwrite=overwrite)
    assert [p.name for p in out.iterdir()] == ["data.csv"]  # not even a lock file was left there
    (out / "data.csv").unlink()
    (out / LOCK_NAME).write_text("")
    trainer.train(out)
    assert read_record(out / LAST)["epoch"] == 3


@pytest.mark.parametrize("kind", KINDS)
def test_resume_accepts_another_spelling_of_out_and_device_and_names_other_differences(trainers, kind, tmp_path,
                                                                                       monkeypatch):
    trainer = trainers[kind]
    trainer.train(tmp_path / "whole")
    trainer.crash(monkeypatch, tmp_path / "split", at=2 if kind != "fusion" else 1)
    monkeypatch.chdir(tmp_path)
    relative = dict(out="split", device="auto")  # the CPU either way here; "auto" would pick a GPU elsewhere
    with pytest.raises(FileError) as error:
        trainer.run(dataclasses.replace(trainer.config, **relative, seed=7, lr=0.5), True, False)
    differences = one_line(error.value).split("another config (", 1)[1].split(")", 1)[0]
    assert differences == f"lr: {trainer.config.lr} in the run, 0.5 now; seed: 0 in the run, 7 now"
    trainer.run(dataclasses.replace(trainer.config, **relative), True, False)
    assert_same_weights(tmp_path / "split" / trainer.checkpoint, tmp_path / "whole" / trainer.checkpoint)


@pytest.mark.parametrize("kind", KINDS)
def test_a_no_op_resume_writes_nothing_and_says_the_run_was_complete(trainers, kind, tmp_path, monkeypatch,
                                                                     capsys):
    trainer, out = trainers[kind], tmp_path / "run"
    trainer.train(out)
    before = snapshot(out)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    trainer.run(trainer.at(Path("run"), device="auto"), True, False)
    assert "the run was already complete and is reused as is" in capsys.readouterr().out
    assert snapshot(out) == before  # log.json, log.csv, config.json, checkpoints, model: same bytes, untouched


# ---- damaged checkpoints -------------------------------------------------------------------------------------

def flip_bit(path: Path, position: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def finished_fusion(trainers, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    trainers["fusion"].train(out, epochs=2)
    return out


def damaged_copies(finished: Path, tmp_path: Path):
    """(label, run folder) with last.safetensors truncated, bit-flipped at seeded positions (header and
    tensors), or re-written without a cirlib record or with one that is not JSON."""
    size = (finished / LAST).stat().st_size
    header = 8 + int.from_bytes((finished / LAST).read_bytes()[:8], "little")
    rng = random.Random(SEED)
    damages = [("truncated", lambda p: p.write_bytes(p.read_bytes()[:size // 2]))]
    damages += [(f"bit {pos}.{bit}", lambda p, pos=pos, bit=bit: flip_bit(p, pos, bit))
                for pos, bit in [(rng.randrange(header), rng.randrange(8)) for _ in range(6)]
                + [(rng.randrange(header, size), rng.randrange(8)) for _ in range(6)]]
    epoch_digit = (finished / LAST).read_bytes().index(b'{\\"epoch\\": 2') + len(b'{\\"epoch\\": ')
    damages.append(("record says epoch 3", lambda p: flip_bit(p, epoch_digit, 0)))  # still JSON: the checksum tells
    tensors = load_file(str(finished / LAST))
    damages += [("no record", lambda p: save_file(tensors, str(p))),
                ("record not JSON", lambda p: save_file(tensors, str(p), metadata={"record": "{epoch: 2"}))]
    for label, damage in damages:
        folder = tmp_path / label.replace(" ", "_")
        shutil.copytree(finished, folder)
        damage(folder / LAST)
        yield label, folder


def test_a_damaged_checkpoint_is_a_one_line_error_naming_it_on_resume(trainers, finished_fusion, tmp_path):
    for label, folder in damaged_copies(finished_fusion, tmp_path):
        with pytest.raises(FileError) as error:
            trainers["fusion"].train(folder, resume=True, epochs=2)
        message = one_line(error.value)
        assert message.startswith(f"{folder / LAST}: "), (label, message)
        assert ("truncated or damaged" in message or "not written by cirlib" in message), (label, message)


# ---- cirlib eval and the fusion job on the small benchmark ---------------------------------------------------

def test_eval_writes_where_the_command_says_and_a_no_op_job_resume_keeps_results(small_benchmark, tmp_path,
                                                                                 monkeypatch, capsys):
    from cirlib.cli import main
    from cirlib.experiments.jobs import run_fusion_job

    model = tiny_model_dir(tmp_path / "clip")[0]
    config = FusionTrainConfig(dataset="cirr", data_root=str(small_benchmark[0] / "synth-cirr"), model=str(model),
                               cache=str(tmp_path / "cache"), fusion="combiner", epochs=1, batch_size=64,
                               fusion_options={"projection_dim": 16, "hidden_dim": 16}, device="cpu",
                               out=str(tmp_path / "run"))
    first = run_fusion_job(config)
    before = snapshot(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    again = run_fusion_job(dataclasses.replace(config, out="run", device="auto", cache="elsewhere"), resume=True)
    assert snapshot(tmp_path / "run") == before and again == json.loads(json.dumps(first))
    assert not (tmp_path / "elsewhere").exists()  # a reused run encodes nothing

    # a downloaded checkpoint whose stored config says where to cache: eval caches where the command says
    module, record = load_trained_fusion(tmp_path / "run" / BEST)
    record["config"]["cache"] = str(tmp_path / "stored-cache")
    save_checkpoint(tmp_path / "downloaded.safetensors", module, None, record)
    capsys.readouterr()
    assert main(["eval", "--run", "downloaded.safetensors", "--cache", "mine", "--results", "results"]) == 0
    capsys.readouterr()
    assert not (tmp_path / "stored-cache").exists() and any((tmp_path / "mine").rglob("*.safetensors"))
    evaluated = json.loads((tmp_path / "results" / f"eval_{tmp_path.name}_downloaded.json").read_text())
    assert evaluated["metrics"] == pytest.approx({k: first["best"][k] for k in evaluated["metrics"]})

    for label, damage in (("truncated", lambda p: p.write_bytes(p.read_bytes()[:-100])),
                          ("flipped", lambda p: flip_bit(p, p.stat().st_size - 7, 3))):
        shutil.copy(tmp_path / "downloaded.safetensors", tmp_path / f"{label}.safetensors")
        damage(tmp_path / f"{label}.safetensors")
        assert main(["eval", "--run", f"{label}.safetensors", "--cache", "mine"]) == 2, label
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{label}.safetensors: the checkpoint is truncated or damaged" in err, err
