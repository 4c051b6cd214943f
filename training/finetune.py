"""``harstream train --base``: adapt a model to your own recordings in minutes, keeping what it knows.

The recipe (its defaults: :data:`training.recipe.FINETUNE`; ``docs/own-data.md`` explains it to users):

1. **Labels**: the base model's labels, then every new class name of the
   data (alphabetical). The old classes keep their output rows (weights and
   bias); each new one gets a new row, drawn at the scale of the old ones.
   Everything else starts from the base model's weights, and the base
   model's standardisation statistics are kept (the weights were trained on
   them).
2. **Data**: windows of the ``--data`` folders: recordings folders (your
   own), and HAPT or MotionSense folders (their train split; their
   validation split joins the held-out set). Training windows are cut every
   ``train_hop`` samples inside each labelled span, as ``harstream train``
   cuts them.
3. **Held out, by a fixed rule** (:func:`hold_out`): for each class, the
   recordings holding it are sorted by name and the last ones are held out,
   one in five (at least one when there are two or more), never the last
   training recording of any class. A class no held-out recording holds (one
   recording holds it all) keeps the first 80% of each of its spans for
   training and holds out the rest.
   The held-out windows lie on the engine's grid (hop 64), as
   ``harstream evaluate`` scores them.
4. **Keeping what it knows**: each epoch mixes in ``base_windows`` windows of
   the base model's own training data (the subjects its metadata lists as
   ``train``, read from the ``base_data`` folders: HAPT by default), drawn at
   random once. Training windows are turned by a small random rotation, as
   the shipped model was trained.
5. **Schedule**: Adam with a cosine-decaying learning rate over ``epochs``
   epochs; after each, macro-F1 on the held-out windows; the best epoch's
   weights are kept (early stopping after ``patience`` epochs without gain).
6. **Result**: an ordinary artifact (``<arch>.keras`` + metadata JSON) whose
   ``labels`` list every class; ``metrics.finetune`` says what it was made
   from, ``metrics.validation`` scores the held-out windows and, when the
   base data's validation subjects were read, ``metrics.base_validation``
   compares base and fine-tuned model on them (forgetting; for a base fitted
   on them too, as the shipped model is, that is retention of seen data).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from training.determinism import ONEDNN_ISA

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", ONEDNN_ISA)  # before TensorFlow loads: training.determinism

import keras
import numpy as np
import numpy.typing as npt
from rich.console import Console

from harstream.data.labelled_windows import WindowSet, build_windows, concat
from harstream.data.layouts import TITLES, detect, read_any
from harstream.data.recordings import recording_of
from harstream.data.scoring import score
from harstream.data.splits import DATASET_SPLITS
from harstream.data.types import Dataset, Segment
from harstream.errors import DatasetError, HarstreamError
from harstream.model import artifact
from harstream.model.artifact import Artifact, ModelMeta
from harstream.model.classifier import standardise
from training.augment import pocket_flips, turn_windows
from training.evaluate import class_map
from training.fitting import PREDICT_BATCH, Selection, compile_cosine, fit, write_run
from training.recipe import FINETUNE, FinetuneConfig
from training.train import limit_windows

HOLD_OUT_EVERY = 5
"""One recording in this many of each class is held out (at least one of two or more)."""
TAIL_FRACTION = 0.2
"""A class only one recording holds: this last part of each of its spans is held out."""
BASE_HOP = 32
"""Hop of the base-data windows the mixed-in sample is drawn from."""


class FinetuneError(HarstreamError):
    """The data cannot fine-tune the model (no windows, no class to learn, an unusable base)."""


@dataclass(frozen=True)
class Source:
    """One ``--data`` folder, read."""

    folder: Path
    layout: str
    dataset: Dataset


def load_base(base: Path | str | None) -> Artifact:
    """The base artifact: a path, or ``None``/``"shipped"`` for the model shipped with harstream."""
    return artifact.load(None if base is None or str(base) == "shipped" else base)


def new_labels(base: Sequence[str], data: Sequence[Dataset]) -> list[str]:
    """The base labels, then every class name labelling a segment of ``data`` they lack, alphabetically.

    >>> from harstream.data.types import six_names
    >>> spans = [Segment(1, 1, i, 0, 200) for i in (101, 13, 4, 5)]
    >>> d = Dataset([], spans, activity_names={**six_names(), 101: "SKIPPING", 13: "JOGGING"})
    >>> new_labels(["WALKING", "SITTING"], [d])
    ['WALKING', 'SITTING', 'JOGGING', 'SKIPPING', 'STANDING']
    """
    names = {name for d in data for name in _used_names(d)} - set(base)
    return [*base, *sorted(names)]


def _used_names(dataset: Dataset) -> set[str]:
    """Class names of ``dataset`` that label at least one segment."""
    present = {s.activity for s in dataset.segments}
    return {name for i, name in dataset.activity_names.items() if i in present}


# -- held-out recordings -----------------------------------------------------------------------


def hold_out(holds: dict[str, set[str]]) -> list[str]:
    """The recordings held out, by the documented rule, from recording name -> classes it holds.

    For each class (alphabetically), its recordings sorted by name; from the
    last, recordings are held out until one in :data:`HOLD_OUT_EVERY` is (at
    least one when the class has two or more), skipping any whose holding out
    would leave one of its classes without a training recording.

    >>> hold_out({"a1": {"WALK"}, "a2": {"WALK"}, "b1": {"JOG"}, "b2": {"JOG", "WALK"}})  # b2 serves both
    ['b2']
    >>> hold_out({"only": {"WALK", "JOG"}})
    []
    """
    held: set[str] = set()
    classes = sorted({c for names in holds.values() for c in names})
    of_class = {c: sorted(r for r, names in holds.items() if c in names) for c in classes}
    for c in classes:
        recordings = of_class[c]
        target = 0 if len(recordings) < 2 else max(1, len(recordings) // HOLD_OUT_EVERY)
        have = sum(r in held for r in recordings)
        for r in reversed(recordings):
            if have >= target:
                break
            if r in held:
                continue
            starves = any(all(q in held or q == r for q in of_class[k]) for k in holds[r])
            if not starves:
                held.add(r)
                have += 1
    return sorted(held)


def split_user_data(
    dataset: Dataset, labels: Sequence[str], key: str
) -> tuple[Dataset, Dataset, list[str], list[str]]:
    """``(training part, held-out part, held-out recordings, tail-split classes)`` of a recordings folder
    (see the module docstring for the rule).

    ``key`` prefixes recording names where several folders are pooled.
    """
    classes = class_map(dataset, labels)
    name_of = dataset.activity_names
    holds: dict[str, set[str]] = {}
    for rec in dataset.recordings:
        name = f"{key}{recording_of(rec.stream_id)}"
        mine = holds.setdefault(name, set())
        mine.update(name_of[s.activity] for s in dataset.segments_of(rec)
                    if s.activity in classes and s.stop - s.start >= 128)
    held = set(hold_out(holds))
    trained = {c for r, names in holds.items() if r not in held for c in names}
    validated = {c for r, names in holds.items() if r in held for c in names}
    tail = sorted(trained - validated)
    train_segments: list[Segment] = []
    held_segments: list[Segment] = []
    for rec in dataset.recordings:
        name = f"{key}{recording_of(rec.stream_id)}"
        for s in dataset.segments_of(rec):
            if name in held:
                held_segments.append(s)
            elif name_of.get(s.activity) in tail:
                cut = s.start + round((1.0 - TAIL_FRACTION) * (s.stop - s.start))
                train_segments.append(replace(s, stop=cut))
                held_segments.append(replace(s, start=cut))
            else:
                train_segments.append(s)
    return (replace(dataset, segments=train_segments), replace(dataset, segments=held_segments),
            sorted(held), tail)


# -- the model -----------------------------------------------------------------------------------


def extend_head(base: keras.Model, old: Sequence[str], labels: Sequence[str], seed: int) -> keras.Model:
    """The base model with its softmax layer widened to ``labels``: old classes keep their rows."""
    head = base.layers[-1]
    config = head.get_config() if isinstance(head, keras.layers.Dense) else {}
    if config.get("activation") != "softmax":
        raise FinetuneError(
            f"the base model's last layer is {type(head).__name__} {head.name!r}, expected a Dense softmax "
            f"layer to widen to the new classes"
        )
    kernel, bias = (np.asarray(w) for w in head.get_weights())
    features = head.input
    widened = keras.layers.Dense(len(labels), activation="softmax", name=head.name)
    model = keras.Model(base.inputs, widened(features), name=base.name)
    rng = np.random.default_rng(seed)
    new_kernel = rng.normal(0.0, float(kernel.std()), (kernel.shape[0], len(labels))).astype(kernel.dtype)
    new_bias = np.full(len(labels), float(bias.min()), dtype=bias.dtype)
    for index, name in enumerate(labels):
        if name in old:
            new_kernel[:, index] = kernel[:, list(old).index(name)]
            new_bias[index] = bias[list(old).index(name)]
    widened.set_weights([new_kernel, new_bias])
    return model


def _fit(model: keras.Model, windows: WindowSet, yours: int, config: FinetuneConfig, epochs: int,
         selection: Selection, mean: Sequence[float], std: Sequence[float]) -> dict[str, list[float]]:
    """Compile ``model`` with the recipe's schedule (a cosine over ``config.epochs`` epochs of these
    windows) and fit it for ``epochs`` of them; the first ``yours`` windows are the user's (flipped);
    returns the history."""
    keras.utils.set_random_seed(config.seed)
    x = turn_windows(windows.x, config.turn_degrees, config.seed)
    if config.flips:
        x = pocket_flips(x, np.arange(len(x)) < yours, config.seed + 1)
    x = standardise(x, mean, std)
    compile_cosine(model, config.learning_rate, config.epochs, len(x), config.batch_size)
    return fit(model, x, windows.y, epochs, config.batch_size, selection)


# -- data ----------------------------------------------------------------------------------------


def read_sources(folders: Sequence[Path | str]) -> list[Source]:
    """Each ``--data`` folder with its layout, read (HAPT and MotionSense: train + validation subjects)."""
    if not folders:
        raise DatasetError("--data: expected at least one recordings or dataset folder, got none")
    sources = []
    for folder in folders:
        layout = detect(folder)
        if layout == "recordings":
            dataset = read_any(folder)
        else:
            splits = DATASET_SPLITS[layout]
            dataset = read_any(folder, set(splits["train"] + splits["validation"]))
        sources.append(Source(Path(folder), layout, dataset))
    return sources


def _base_pool(
    meta: ModelMeta, folders: Sequence[Path], labels: Sequence[str], console: Console
) -> tuple[WindowSet, WindowSet | None, list[str]]:
    """Windows of the base model's training subjects (hop :data:`BASE_HOP`) and of its validation
    subjects (engine grid), from the folders holding its training data."""
    pool: list[WindowSet] = []
    held: list[WindowSet] = []
    used: list[str] = []
    for folder in folders:
        layout = detect(folder)
        prefix = "" if layout == "hapt" else f"{layout}_"
        train = meta.subjects.get(f"{prefix}train")
        # a base fitted on every non-test person (the shipped model) held none out: what it still knows
        # is then measured on the dataset's own validation split, which it saw in training
        validation = meta.subjects.get(f"{prefix}validation") or list(DATASET_SPLITS[layout]["validation"])
        if not train:
            console.print(f"[yellow]{folder}: the base model was not trained on {TITLES[layout]} data; "
                          "not mixed in[/]")
            continue
        dataset = read_any(folder, set(train) | set(validation or ()))
        classes = class_map(dataset, labels)
        pool.append(build_windows(dataset, train, hop=BASE_HOP, classes=classes))
        if validation:
            held.append(build_windows(dataset, validation, align="stream", classes=classes))
        used.append(f"{folder} ({TITLES[layout]} subjects {', '.join(map(str, sorted(train)))})")
    read = {detect(f) for f in folders}
    for key in meta.subjects:
        trained = "hapt" if key == "train" else key.removesuffix("_train") if key.endswith("_train") else None
        if trained is not None and trained not in read and trained in TITLES:
            console.print(f"[yellow]the base model was also trained on {TITLES[trained]} (subjects "
                          f"{key}): pass --base-data with that folder to mix it in too[/]")
    return concat(pool), (concat(held) if held else None), used


@dataclass(frozen=True)
class _YourWindows:
    """The windows of the ``--data`` folders, split by the held-out rule."""

    train: WindowSet
    """Training windows (hop ``train_hop``; at most ``max_windows``)."""
    held_out: WindowSet
    """Held-out windows, on the engine's grid: what selects the epoch."""
    refit: WindowSet
    """The held-out spans cut as training windows: what the refit adds."""
    held_names: list[str]
    """The held-out recordings."""
    tails: list[str]
    """Classes one recording holds, whose spans' tails are held out."""


def _your_windows(sources: Sequence[Source], labels: Sequence[str], config: FinetuneConfig) -> _YourWindows:
    """Training, held-out and refit windows of every source (recordings folders by the held-out rule,
    datasets by their splits)."""
    train_parts, held_parts, refit_parts = [], [], []
    held_names: list[str] = []
    tails: set[str] = set()
    for source in sources:
        classes = class_map(source.dataset, labels)
        fit_data, check_data = source.dataset, source.dataset
        fit_subjects: Sequence[int] | None = None  # None: every recording
        check_subjects: Sequence[int] | None = None
        if source.layout == "recordings":
            key = f"{source.folder}/" if len(sources) > 1 else ""
            fit_data, check_data, held, tail = split_user_data(source.dataset, labels, key)
            held_names += held
            tails.update(tail)
        else:
            splits = DATASET_SPLITS[source.layout]
            fit_subjects, check_subjects = splits["train"], splits["validation"]
        train_parts.append(build_windows(fit_data, fit_subjects, hop=config.train_hop, classes=classes))
        held_parts.append(build_windows(check_data, check_subjects, align="stream", classes=classes))
        refit_parts.append(build_windows(check_data, check_subjects, hop=config.train_hop, classes=classes))
    return _YourWindows(limit_windows(concat(train_parts), config.max_windows, config.seed),
                        concat(held_parts), concat(refit_parts), held_names, sorted(tails))


def _check_trainable(mine: WindowSet, labels: Sequence[str], added: Sequence[str]) -> None:
    """Refuse data without training windows, or without any of a new class."""
    if not len(mine):
        raise FinetuneError("the --data folders hold no training window (128 samples, 2.56 s, inside one "
                            "labelled span); label longer spans")
    missing = [name for name in added if not (mine.y == labels.index(name)).any()]
    if missing:
        raise FinetuneError(f"new class(es) {', '.join(missing)} have no training window: expected spans "
                            "of at least 2.56 s of them")


def _print_plan(console: Console, old: Sequence[str], added: Sequence[str], yours: _YourWindows,
                mixed: int, pool: int, pool_used: Sequence[str], config: FinetuneConfig) -> None:
    """Labels, your windows, what is held out and how much base data is mixed in."""
    console.print(
        f"labels: {', '.join(old)}" + (f" + new {', '.join(added)}" if added else " (no new class)")
        + f"\nyour windows: {len(yours.train)} training, {len(yours.held_out)} held out"
        + (f" (recordings {', '.join(yours.held_names)})" if yours.held_names else "")
        + (f"; classes in one recording only, last {TAIL_FRACTION:.0%} of each span held out: "
           f"{', '.join(yours.tails)}" if yours.tails else "")
        + f"\nbase model's training data mixed in: {mixed} windows"
        + (f" of {pool} from {'; '.join(pool_used)}" if pool_used else
           " (none found: old classes may be forgotten; pass --base-data with the base model's data)"),
        highlight=False,
    )
    if not config.base_windows or not mixed:
        console.print("[yellow]no base data mixed in: the old classes are learnt from your data alone[/]")
    if not len(yours.held_out):
        console.print("[yellow]nothing held out (no class is in two recordings, spans too short): the whole "
                      "schedule runs, its last epoch is kept[/]")


def _predict(model: keras.Model, x: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """The label index ``model`` gives each window."""
    predicted: npt.NDArray[np.int64] = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).argmax(axis=1)
    return predicted


def _print_summary(console: Console, metrics: dict[str, Any], config: FinetuneConfig, path: Path,
                   labels: Sequence[str]) -> None:
    """The selected epoch, the held-out scores, the forgetting check and where the artifact went."""
    summary = f"selected epoch {metrics['best_epoch']}" + (" (refit on everything)" if config.refit else "")
    if "validation" in metrics:
        v = metrics["validation"]
        summary += f": held-out accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}"
    if "base_validation" in metrics:
        b = metrics["base_validation"]
        summary += (f"; base data's validation subjects: macro-F1 {b['base']['macro_f1']:.4f} before, "
                    f"{b['finetuned']['macro_f1']:.4f} after")
    console.print(f"{summary} ({metrics['total_seconds']:.0f} s in all)", highlight=False)
    console.print(f"wrote {path} (labels {', '.join(labels)}) and the report in {path.parent}", highlight=False)


def _forgetting_set(base_held: WindowSet | None, old: Sequence[str], mean: Sequence[float],
                    std: Sequence[float]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None:
    """The base data's validation windows of the base model's classes, standardised, and their labels
    (None when there are none): what fine-tuning must not make the model forget."""
    if base_held is None:
        return None
    known = base_held.y < len(old)
    return (standardise(base_held.x[known], mean, std), base_held.y[known]) if known.any() else None


def _select(loaded: Artifact, labels: Sequence[str], yours: _YourWindows, mixed: WindowSet,
            config: FinetuneConfig, console: Console
            ) -> tuple[keras.Model, Selection, dict[str, list[float]], dict[str, Any] | None]:
    """The model fitted from the base on your training windows and the mixed-in ones, at the epoch
    the held-out windows chose; the selection that chose it; the history; the held-out scores
    (None when nothing is held out)."""
    mean, std = loaded.meta.norm_mean, loaded.meta.norm_std
    x_held = standardise(yours.held_out.x, mean, std)
    model = extend_head(loaded.model, loaded.meta.labels, labels, config.seed)
    selection = Selection(model, (x_held, yours.held_out.y), config.epochs, config.patience, console, labels)
    history = _fit(model, concat([yours.train, mixed]), len(yours.train), config, config.epochs, selection,
                   mean, std)
    validation = score(yours.held_out.y, _predict(model, x_held), labels=labels) if len(yours.held_out) else None
    return model, selection, history, validation


def _refit(loaded: Artifact, initial: list[Any], labels: Sequence[str], train_set: WindowSet, yours: int,
           config: FinetuneConfig, epochs: int, console: Console) -> keras.Model:
    """The model fitted afresh from the base weights ``initial`` on ``train_set`` for ``epochs`` epochs
    (the first ``yours`` windows are the user's)."""
    loaded.model.set_weights(initial)
    model = extend_head(loaded.model, loaded.meta.labels, labels, config.seed)
    progress = Selection(model, None, epochs, config.patience, console, labels, prefix="refit ")
    _fit(model, train_set, yours, config, epochs, progress, loaded.meta.norm_mean, loaded.meta.norm_std)
    return model


def finetune(
    base: Path | str | None,
    data: Sequence[Path | str],
    out_dir: Path,
    config: FinetuneConfig = FINETUNE,
    base_data: Sequence[Path | str] = (),
    console: Console | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base`` on the ``data`` folders, write the artifact and report into ``out_dir``;
    returns the metrics (also in the artifact's metadata)."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    loaded = load_base(base)
    old = list(loaded.meta.labels)
    with console.status("reading the recordings..."):
        sources = read_sources(data)
    labels = new_labels(old, [s.dataset for s in sources])
    added = labels[len(old):]
    with console.status("building windows through the streaming signal chain..."):
        yours = _your_windows(sources, labels, config)
        _check_trainable(yours.train, labels, added)
        pool, base_held, pool_used = (_base_pool(loaded.meta, [Path(f) for f in base_data], labels, console)
                                      if config.base_windows else (concat([]), None, []))
        mixed = limit_windows(pool, config.base_windows, config.seed + 1)
    _print_plan(console, old, added, yours, len(mixed), len(pool), pool_used, config)
    initial = loaded.model.get_weights()  # the refit starts from these again
    forgetting = _forgetting_set(base_held, old, loaded.meta.norm_mean, loaded.meta.norm_std)
    before = None if forgetting is None else _predict(loaded.model, forgetting[0])  # before training changes it
    fit_started = time.perf_counter()
    model, selection, history, validation = _select(loaded, labels, yours, mixed, config, console)
    epochs_run = len(history.get("loss", []))
    best_epoch = selection.best_epoch or epochs_run
    train_set = concat([yours.train, mixed])
    if config.refit and len(yours.refit):
        console.print(f"refit on every recording, the held-out ones too ({len(yours.refit)} more windows), "
                      f"for the {best_epoch} selected epoch(s)", highlight=False)
        train_set = concat([yours.train, yours.refit, mixed])
        model = _refit(loaded, initial, labels, train_set, len(yours.train) + len(yours.refit), config,
                       best_epoch, console)
    metrics: dict[str, Any] = {
        "finetune": {
            "base": str(loaded.path), "base_weights_sha256": loaded.meta.weights_sha256,
            "base_labels": old, "new_labels": added,
            "data": [f"{s.folder} ({TITLES[s.layout]})" for s in sources],
            "held_out_recordings": yours.held_names, "tail_held_out_classes": yours.tails,
            "train_windows": len(yours.train), "held_out_windows": len(yours.held_out),
            "refit_windows": len(train_set) - len(mixed) if config.refit else 0,
            "base_windows": len(mixed), "base_data": pool_used, "config": asdict(config),
        },
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "train_seconds": round(time.perf_counter() - fit_started, 1),
        "parameters": int(model.count_params()),
    }
    if validation is not None:
        metrics["validation"] = validation  # the selection run's, before any refit: an honest held-out score
    if forgetting is not None and before is not None:  # what must not be forgotten
        after = _predict(model, forgetting[0])
        metrics["base_validation"] = {"base": score(forgetting[1], before, labels=old),
                                      "finetuned": score(forgetting[1], after, labels=labels)}
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    meta = ModelMeta(
        architecture=loaded.meta.architecture, norm_mean=list(loaded.meta.norm_mean),
        norm_std=list(loaded.meta.norm_std), subjects=dict(loaded.meta.subjects),
        training_data_sha256=train_set.checksum(), labels=labels, metrics=metrics,
    )
    curves = {"loss": [float(v) for v in history.get("loss", [])], "val_macro_f1": selection.scores}
    _print_summary(console, metrics, config, write_run(out_dir, model, meta, curves, metrics), labels)
    return metrics
