"""A classroom exercise: what the teacher fixes, locks and limits, and the class leaderboard.

The teacher writes a TOML file on the server and starts the lab with
``LAB_EXERCISE=that.toml``; a student cannot edit it, nor a URL, to get more:

    [exercise]
    title = "Fashion-MNIST with two conv layers"
    text = "Beat 91% in 10 epochs. Change the filters, not the epochs."
    dataset = "fashion-mnist"               # everyone trains on it; the Data page is locked
    presets = ["fashion_cnn", "lenet5"]     # the presets offered on Build (first: the start)
    augment_presets = ["none", "keras_basic"]
    locked = ["build"]                      # also: "augment" (first augment preset), "data"

    [exercise.train]                        # fixed for everyone, shown locked on Train
    epochs = 10
    batch_size = 128

    [limits]                                # any field of lab.settings.Limits
    max_params = 500000

    [teacher]
    password = "class-7b"                   # or LAB_TEACHER_PASSWORD

Locks are applied to each session's draft (:meth:`Exercise.apply`) and checked again
by every page that submits a student's run (:func:`check_run`), so neither a share
link nor a crafted widget value gets round them. Teachers and the command line are
free. The job queue (lab.jobs) knows nothing of exercises: it runs what it is given, in the
order of the priority the page asks for (:func:`queue_priority`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace

from lab import settings
from lab.data.registry import DATASETS
from lab.model.presets import PRESETS, get_preset
from lab.runs.access import Visitor
from lab.runs.compare import run_row
from lab.runs.view import RunInfo
from lab.settings import ExerciseFileError
from lab.train.augment import AUGMENT_PRESETS
from lab.train.engine import ConfigError, TrainConfig

PAGES = ("data", "build", "augment")
LOCK_NEEDS = {  # what a locked page is locked to, as the file must say it
    "data": 'dataset = "fashion-mnist" (the dataset everyone trains on)',
    "build": 'presets = ["fashion_cnn"] (the models students may train)',
    "augment": 'augment_presets = ["none"] (the first is the one everyone uses)',
}
DRAFT_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"spec", "dataset", "augment", "name", "owner"}
LEADERBOARD_COLUMNS = ["rank", "owner", "name", "spec", "params", "augment", "epochs_done", "best_val_acc",
                       "status", "created", "id"]


@dataclass(frozen=True)
class Exercise:
    """The exercise as the teacher wrote it, checked against what this lab has."""

    title: str = ""
    text: str = ""
    dataset: str = ""
    presets: tuple[str, ...] = ()
    augment_presets: tuple[str, ...] = ()
    locked: frozenset[str] = frozenset()
    train: dict = field(default_factory=dict)

    def locks(self, page: str) -> bool:
        """Whether a page's controls are fixed: the Data page also whenever a dataset is set."""
        return page in self.locked or (page == "data" and bool(self.dataset))

    def apply(self, draft: dict) -> dict:
        """Put the exercise's fixed values into a draft, in place; returns it."""
        if self.dataset:
            draft["dataset"] = self.dataset
        if self.presets and (self.locks("build") and not self._is_offered(draft["spec"])):
            draft.update(preset=self.presets[0], spec=get_preset(self.presets[0]))
        if self.augment_presets and (self.locks("augment")
                                     or not _is_augment_preset(draft["augment"], self.augment_presets)):
            draft["augment"] = {"preset": self.augment_presets[0]}
        draft["train"].update(self.train)
        return draft

    def check(self, config: TrainConfig) -> None:
        """Refuse a run that breaks the exercise, saying what the exercise asks for.

        Every lock refuses on its own, whatever else the exercise says: a locked page
        with nothing to lock it to lets no run through rather than every run."""
        if self.locks("data") and config.dataset != self.dataset:
            raise ConfigError(f"this exercise trains on {self.dataset}, not {config.dataset}")
        if self.locks("build") and not self._is_offered(config.spec):
            raise ConfigError(f"this exercise trains one of the models {', '.join(self.presets)} as they are")
        allowed = self.augment_presets[:1] if self.locks("augment") else self.augment_presets
        if (allowed or self.locks("augment")) and not _is_augment_preset(config.augment, allowed):
            raise ConfigError(f"this exercise uses the augmentation {' or '.join(allowed)}")
        for key, value in self.train.items():
            if getattr(config, key) != value:
                raise ConfigError(f"this exercise fixes {key} at {value}")

    def follows(self, config: TrainConfig) -> bool:
        """Whether a run does the exercise, not just keeps to it: it passes :meth:`check` and trains on the
        exercise's dataset and, when it lists presets, one of them as it is. Free exploration beside it
        (an unlocked page lets a student train anything) is welcome but does not go ahead of the class."""
        try:
            self.check(config)
        except ConfigError:
            return False
        return ((not self.dataset or config.dataset == self.dataset)
                and (not self.presets or self._is_offered(config.spec)))

    def _is_offered(self, spec) -> bool:
        return any(spec == get_preset(name) for name in self.presets)


def _is_augment_preset(augment, names: tuple[str, ...]) -> bool:
    """Whether ``augment`` is exactly one of the augment presets ``names`` (in any spelling), with no overrides."""
    if not (isinstance(augment, dict) and len(augment) == 1 and AUGMENT_PRESETS.recognises(augment.get("preset"))):
        return False
    return AUGMENT_PRESETS.name_of(augment["preset"]) in names


_last: list = [None, None]  # (the file's [exercise] table, its Exercise): checked once per file version


def current_exercise() -> Exercise | None:
    """The exercise of ``LAB_EXERCISE``'s file, or None when there is none."""
    table = settings.exercise_file().get("exercise")
    if table is None:
        return None
    if _last[0] is not table:  # exercise_file() returns the same dict until the file changes
        _last[:] = [table, _read_exercise(table)]
    return _last[1]


def check_run(config: TrainConfig, visitor: Visitor | None) -> None:
    """Refuse a student's run that breaks the class's exercise, saying what the exercise asks for.

    Called by a page before it submits a run for its browser session; a teacher's session
    and the command line (no visitor) are free.
    """
    exercise = current_exercise()
    if exercise is not None and visitor is not None and not visitor.teacher:
        exercise.check(config)


def queue_priority(config: TrainConfig, visitor: Visitor | None) -> int:
    """The priority a page submits a run with (lab.jobs.queue): a teacher's demo starts first, then a
    student's run that follows the exercise (:meth:`Exercise.follows`), then everything else (0, as for
    the command line). The numbers are the server's queue settings (``teacher_priority``,
    ``exercise_priority``), so a class that wants one queue for all sets them to 0."""
    queue = settings.queue_settings()
    if visitor is not None and visitor.teacher:
        return queue.teacher_priority
    exercise = current_exercise()
    if visitor is not None and exercise is not None and exercise.follows(config):
        return queue.exercise_priority
    return 0


def _read_exercise(table: dict) -> Exercise:
    known = {f.name for f in fields(Exercise)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ExerciseFileError(f"unknown key(s) {', '.join(unknown)} in [exercise]; valid: {', '.join(sorted(known))}")
    written = Exercise(title=str(table.get("title", "")), text=str(table.get("text", "")),
                       dataset=str(table.get("dataset", "")), presets=tuple(table.get("presets", ())),
                       augment_presets=tuple(table.get("augment_presets", ())),
                       locked=frozenset(table.get("locked", ())), train=dict(table.get("train", {})))
    _validate(written)
    return replace(written, dataset=DATASETS.name_of(written.dataset) if written.dataset else "",
                   presets=tuple(PRESETS.name_of(p) for p in written.presets),
                   augment_presets=tuple(AUGMENT_PRESETS.name_of(a) for a in written.augment_presets))


def _validate(exercise: Exercise) -> None:
    """Every name in the file is one this lab knows (in any spelling its registries take), every
    locked page has a value to be locked to, and the fixed settings are usable."""
    problems = []
    if exercise.dataset and not DATASETS.recognises(exercise.dataset):
        problems.append(f"dataset {exercise.dataset!r} is not one of this lab's")
    problems += [f"preset {p!r} does not exist" for p in exercise.presets if not PRESETS.recognises(p)]
    problems += [f"augment preset {a!r} does not exist" for a in exercise.augment_presets
                 if not AUGMENT_PRESETS.recognises(a)]
    problems += [f"locked {page!r} is not one of {', '.join(PAGES)}" for page in exercise.locked if page not in PAGES]
    values = {"data": exercise.dataset, "build": exercise.presets, "augment": exercise.augment_presets}
    problems += [f"locked {page!r} needs what to lock it to: add {LOCK_NEEDS[page]}"
                 for page in PAGES if page in exercise.locked and not values[page]]
    problems += [f"train setting {key!r} is not one a draft has" for key in exercise.train if key not in DRAFT_TRAIN_FIELDS]
    if not problems:
        try:
            TrainConfig.from_dict({**exercise.train, "dataset": exercise.dataset or "shapes"}).validate()
        except ConfigError as err:
            problems.append(f"[exercise.train]: {err}")
    if problems:
        raise ExerciseFileError("exercise file: " + "; ".join(problems))


def starting_draft(draft: dict, exercise: Exercise | None) -> dict:
    """A new session's draft: the exercise's first preset and settings."""
    draft = copy.deepcopy(draft)
    if exercise is None:
        return draft
    if exercise.presets:
        draft.update(preset=exercise.presets[0], spec=get_preset(exercise.presets[0]))
    return exercise.apply(draft)


def leaderboard(runs: list[RunInfo], exercise: Exercise | None = None, best_per_student: bool = True) -> list[dict]:
    """Runs ranked by best validation accuracy: the class gallery.

    Only runs of the exercise's dataset count when it has one; with ``best_per_student``
    each name keeps its best run, so one student's ten tries do not fill the table.
    Runs that have not completed an epoch are listed last, unranked.
    """
    rows = [run_row(run) for run in runs if not (exercise and exercise.dataset)
            or run.config.get("dataset") == exercise.dataset]
    rows.sort(key=lambda r: (r["best_val_acc"] is None, -(r["best_val_acc"] or 0.0), r["created"] or ""))
    if best_per_student:
        best: dict[str, dict] = {}
        for row in rows:  # best first: the first row of each student is their best
            best.setdefault(row["owner"] or row["id"], row)  # runs without a name are nobody's but their own
        rows = list(best.values())
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["best_val_acc"] is not None else None
    return rows
