"""Feature space by epoch: the probe, the recorder, the 2-D maps and their alignment,
k-NN accuracy, the embedding worker, rebuilding a run's model, ``python -m lab embed``."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from lab.cli import main, run_training
from lab.data import load_dataset
from lab.insight.embed import METHODS, displacement, embed_epoch, pca, procrustes, standardize, tsne
from lab.insight.errors import InsightError
from lab.insight.hooks import hook_count
from lab.insight.load import load_run_model
from lab.insight.maps import ensure_maps, load_map
from lab.insight.probe import (
    ProbeRecorder,
    cam_sample_indices,
    knn_accuracy,
    load_cams,
    load_probe,
    probe_indices,
)
from lab.insight.worker import EmbeddingWorker
from lab.jobs import JobManager
from lab.runs.layout import RunLayout
from lab.runs.store import RunStore
from lab.train.engine import Callback, ConfigError, TrainConfig, Trainer

SMALL_CNN = {"name": "small", "layers": [
    {"type": "conv2d", "filters": 8}, {"type": "maxpool2d"},
    {"type": "conv2d", "filters": 16}, {"type": "global_avg_pool"}, {"type": "dense", "units": 10},
]}


def digits_config(**overrides) -> TrainConfig:
    values = dict(spec=SMALL_CNN, dataset="digits", epochs=2, batch_size=64, lr=3e-3, device="cpu", probe_size=200)
    values.update(overrides)
    return TrainConfig.from_dict(values)


# ---------------------------------------------------------------- the probe set


def test_probe_is_stratified_fixed_and_sorted():
    labels = np.repeat(np.arange(4), [500, 300, 150, 50])  # imbalanced on purpose
    picked = probe_indices(labels, 100)
    assert len(picked) == 100 == len(set(picked.tolist()))
    assert np.array_equal(picked, np.sort(picked))
    assert np.bincount(labels[picked]).tolist() == [50, 30, 15, 5]  # each class its share
    assert np.array_equal(picked, probe_indices(labels, 100))  # fixed: same images every call
    assert not np.array_equal(picked, probe_indices(labels, 100, seed=1))
    assert np.array_equal(probe_indices(labels, 5000), np.arange(1000))  # asks for more than there is
    odd = probe_indices(labels, 7)
    assert len(odd) == 7 and np.bincount(labels[odd], minlength=4).tolist() == [4, 2, 1, 0]


def test_cam_samples_are_one_image_per_class():
    labels = np.array([2, 0, 1, 1, 2, 0, 2])
    picked = cam_sample_indices(labels, 3)
    assert labels[picked].tolist() == [0, 1, 2]


# ---------------------------------------------------------------- the recorder


def test_run_records_epoch_zero_and_every_epoch(gap_cam_run):
    run = RunStore(gap_cam_run.runs_dir).get(gap_cam_run.run_id)
    assert run.probe_epochs == [0, 1, 2, 3]
    ds = load_dataset("shapes")
    first = load_probe(run.layout, 0)
    assert first.features.shape == (400, 128) and first.layer == "global_avg_pool_1"  # the output layer's input
    assert np.bincount(first.labels).tolist() == [50] * 8  # stratified: the val split is balanced
    assert np.array_equal(first.labels, ds.val_y.numpy()[first.indices])
    for epoch in (1, 2, 3):
        probe = load_probe(run.layout, epoch)
        assert np.array_equal(probe.indices, first.indices) and np.array_equal(probe.labels, first.labels)
        assert probe.preds.min() >= 0 and probe.preds.max() < 8 and np.isfinite(probe.features).all()
    summary = run.probe_index
    knn = [row["knn_acc"] for row in summary["epochs"]]
    assert [row["epoch"] for row in summary["epochs"]] == [0, 1, 2, 3]
    assert knn[-1] > 0.8 and knn[-1] > knn[0] + 0.3  # the classes separate as the net learns
    assert load_probe(run.layout, 3).knn_acc == pytest.approx(knn[-1], abs=1e-6)
    meta = run.probe_meta
    assert meta["layer"] == "global_avg_pool_1" and meta["cam_method"] == "cam" and len(meta["indices"]) == 400


def test_cam_samples_and_weights_are_recorded_every_epoch(gap_cam_run):
    run = RunLayout(gap_cam_run.run_dir)
    assert run.cam_epochs() == [0, 1, 2, 3]
    assert run.weight_epochs() == [0, 1, 2, 3]
    for epoch in (0, 3):
        cams = load_cams(run, epoch)
        assert cams.heatmaps.shape == (8, 32, 32) and cams.labels.tolist() == list(range(8))
        assert cams.heatmaps.min() >= 0 and cams.heatmaps.max() <= 1 and cams.method == "cam"
    assert (load_cams(run, 3).preds == load_cams(run, 3).labels).mean() > 0.5


class Spy(Callback):
    """Listens after the recorder: the hooks on the model and its mode at each epoch end."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, metrics):
        self.seen.append((hook_count(trainer.model), trainer.model.training))


def test_recorder_on_a_chosen_layer_leaves_no_hooks(tmp_path):
    store = RunStore(tmp_path)
    config = digits_config(probe_layer="conv2d_2")
    trainer = Trainer(config)
    run_id = store.create({"spec": config.spec})
    spy = Spy()
    trainer.callbacks = [ProbeRecorder(store, run_id, size=config.probe_size, layer=config.probe_layer), spy]
    assert trainer.run().status == "finished"
    assert spy.seen == [(0, True), (0, True)]  # after each record: no hook left, train mode back
    probe = load_probe(store.layout(run_id), 2)
    assert probe.layer == "conv2d_2" and probe.features.shape == (200, 16)  # maps averaged per channel
    assert store.get(run_id).probe_epochs == [0, 1, 2]


def test_insight_off_records_nothing_and_bad_settings_are_refused(tmp_path, monkeypatch):
    run_id, result = run_training(digits_config(insight=False, epochs=1), tmp_path, None)
    assert result.status == "finished" and not RunStore(tmp_path).layout(run_id).probe_dir.exists()
    with pytest.raises(ConfigError, match="probe_size must be a whole number from 10 to 5,000"):
        digits_config(probe_size=6000).validate()
    monkeypatch.setenv("LAB_MAX_PROBE_SIZE", "8000")
    digits_config(probe_size=6000).validate()
    with pytest.raises(ConfigError, match="insight must be true or false"):
        digits_config(insight="yes").validate()
    with pytest.raises(ConfigError, match="probe_layer 'conv9'.*conv2d_1, maxpool2d_1, conv2d_2"):
        digits_config(probe_layer="conv9").validate()


def test_job_manager_runs_get_the_probe(tmp_path):
    jobs = JobManager(runs_dir=tmp_path)
    run_id = jobs.submit(digits_config(epochs=1))
    assert jobs.wait(run_id, timeout=120).status == "finished"
    assert jobs.store.get(run_id).probe_epochs == [0, 1]


# ---------------------------------------------------------------- numbers beside the picture


def test_knn_accuracy_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 6)) + np.repeat(np.eye(6)[:3] * 1.5, 100, axis=0)
    labels = np.repeat(np.arange(3), 100)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    for k in (1, 5):
        near = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        votes = np.stack([np.bincount(labels[row], minlength=3) for row in near]).astype(float)
        votes[np.arange(300), labels[near[:, 0]]] += 0.5  # a tie goes to the nearest neighbour
        expected = (votes.argmax(1) == labels).mean()
        got = knn_accuracy(torch.tensor(feats), torch.tensor(labels), k=k)
        assert got == pytest.approx(expected)
    assert 0.5 < got < 1.0
    separated = np.repeat(np.eye(3) * 10, 20, axis=0) + rng.normal(scale=0.1, size=(60, 3))
    assert knn_accuracy(torch.tensor(separated), torch.tensor(np.repeat(np.arange(3), 20))) == 1.0


def test_procrustes_undoes_rotation_scale_and_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 2))
    angle = 1.1
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 3.0 * ref @ rot @ np.diag([1, -1]) + [5, -2]  # rotated, reflected, scaled, shifted
    np.testing.assert_allclose(procrustes(moved, ref), standardize(ref), atol=1e-9)
    assert np.sqrt((standardize(moved) ** 2).sum(1).mean()) == pytest.approx(1.0)


def test_pca_matches_scikit_learn_up_to_sign():
    from sklearn.decomposition import PCA

    x = np.random.default_rng(0).normal(size=(100, 7)) @ np.diag([5, 3, 2, 1, 1, 1, 1])
    ours, theirs = pca(x), PCA(n_components=2).fit_transform(x)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-8)


# ---------------------------------------------------------------- maps


@pytest.mark.parametrize("method", METHODS)
def test_maps_have_one_row_per_probe_image_and_are_cached(gap_cam_run, tmp_path, method):
    run = RunLayout(tmp_path / "run")
    shutil.copytree(gap_cam_run.run_dir, run.root)
    upto = 3 if method != "umap" else 1  # umap-learn compiles on first use: two epochs are enough
    maps = ensure_maps(run, method, upto=upto)
    assert sorted(maps) == list(range(upto + 1))
    for epoch, points in maps.items():
        assert points.shape == (400, 2) and np.isfinite(points).all()
        np.testing.assert_array_equal(load_map(run, epoch, method), points)
    stamp = run.map(method, 0).stat().st_mtime_ns
    ensure_maps(run, method, upto=upto)  # from the cache: nothing recomputed
    assert run.map(method, 0).stat().st_mtime_ns == stamp


def test_aligned_epochs_move_less_than_unaligned_ones(gap_cam_run, tmp_path):
    features = [load_probe(RunLayout(gap_cam_run.run_dir), e).features for e in range(4)]
    # PCA: Procrustes-aligned chain vs each epoch's PCA on its own.
    aligned, previous = [], None
    for f in features:
        previous = embed_epoch(f, "pca", previous)
        aligned.append(previous)
    alone = [standardize(pca(f)) for f in features]
    moved_aligned = [displacement(a, b) for a, b in zip(aligned, aligned[1:])]
    moved_alone = [displacement(a, b) for a, b in zip(alone, alone[1:])]
    assert sum(moved_aligned) < sum(moved_alone)
    assert all(a <= b + 1e-9 for a, b in zip(moved_aligned, moved_alone))  # Procrustes is optimal
    # t-SNE: warm-started chain vs independent runs (different seeds, as two page loads would be).
    warm = [embed_epoch(f, "tsne", None) for f in features[2:3]]
    warm.append(embed_epoch(features[3], "tsne", warm[0]))
    cold = [standardize(tsne(f, None, seed=s)) for s, f in enumerate(features[2:], start=1)]
    print(f"PCA moves {sum(moved_aligned):.3f} aligned vs {sum(moved_alone):.3f}; t-SNE epoch 2->3 "
          f"{displacement(*warm):.3f} warm vs {displacement(*cold):.3f} cold")
    assert displacement(*warm) < displacement(*cold)


def test_embedding_worker_computes_in_the_background_and_reports_failures(gap_cam_run, tmp_path):
    run, short, broken = (RunLayout(tmp_path / name) for name in ("run", "short", "broken"))
    shutil.copytree(RunLayout(gap_cam_run.run_dir).probe_dir, run.probe_dir)
    short.probe_dir.mkdir(parents=True)
    for epoch in (0, 1):
        shutil.copy(run.probe(epoch), short.probe(epoch))
    broken.probe_dir.mkdir(parents=True)
    broken.probe(0).write_bytes(b"not a zip")
    worker = EmbeddingWorker(nice=0)  # at the server's nice 19, a busy machine starves it past any timeout
    try:
        assert worker.get(run, 2, "pca") is None  # not made yet: asked for, not waited for
        worker.request(short, "tsne")  # in the worker's child process
        worker.request(RunLayout(tmp_path / "." / "broken"), "pca")  # the same run, spelt otherwise
        assert worker.wait(timeout=120)
        assert worker.get(run, 2, "pca").shape == (400, 2)
        assert [load_map(run, e, "pca") is not None for e in range(4)] == [True] * 4
        assert [load_map(short, e, "tsne").shape for e in (0, 1)] == [(400, 2)] * 2
        assert list(worker.errors) == [worker.key(broken, "PCA")]
        with pytest.raises(InsightError):
            worker.request(run, "isomap")
        child = worker._child.proc
    finally:
        worker.close()
    assert child.poll() is not None  # closing the worker ends its child process


# ---------------------------------------------------------------- rebuilding a run


def test_load_run_model_by_epoch_and_its_input_statistics(gap_cam_run, tmp_path):
    model, config, stats = load_run_model(gap_cam_run.run_id, "best", runs_dir=gap_cam_run.runs_dir)
    assert not model.training and config["spec"]["name"] == "gap_cam" and stats.shape == (3, 32, 32)
    ds = load_dataset("shapes")
    np.testing.assert_allclose(stats.mean, ds.channel_stats()[0])
    untrained, _, _ = load_run_model(gap_cam_run.run_dir, 0)
    last, _, _ = load_run_model(gap_cam_run.run_dir, "last")
    three, _, _ = load_run_model(gap_cam_run.run_dir, "3")
    assert torch.equal(last.layers.output.linear.weight, three.layers.output.linear.weight)
    assert not torch.equal(untrained.layers.output.linear.weight, three.layers.output.linear.weight)
    with pytest.raises(InsightError, match="no weights saved for epoch 9; use best, last or one of epochs 0, 1"):
        load_run_model(gap_cam_run.run_dir, 9)
    # A run recorded before config.json kept the statistics: they are computed as training did.
    old = tmp_path / "old"
    shutil.copytree(gap_cam_run.run_dir, old)
    config_json = json.loads((old / "config.json").read_text())
    del config_json["resolved"]["mean"], config_json["resolved"]["std"]
    (old / "config.json").write_text(json.dumps(config_json))
    assert load_run_model(old, "last")[2].std == pytest.approx(stats.std)


# ---------------------------------------------------------------- the command line


def test_cli_embed_writes_one_row_per_probe_point(gap_cam_run, copy_gap_cam_run, tmp_path, capsys):
    out = tmp_path / "maps" / "epoch1.csv"
    run_id = copy_gap_cam_run(tmp_path / "runs")  # embed caches its maps in the run folder
    code = main(["embed", run_id, "--runs-dir", str(tmp_path / "runs"), "--method", "pca",
                 "--epoch", "1", "--out", str(out)])
    assert code == 0 and "epoch 1: 400 probe points, k-NN accuracy" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 400 and {"x", "y", "label", "prediction"} <= set(rows[0])
    probe = load_probe(RunLayout(gap_cam_run.run_dir), 1)
    assert [int(r["label"]) for r in rows] == probe.labels.tolist()
    assert [int(r["prediction"]) for r in rows] == probe.preds.tolist()


@pytest.mark.parametrize("argv, message", [
    (["nope-run"], "no run 'nope-run'"),
    (["{run}", "--method", "isomap"], "unknown embedding method 'isomap'"),
    (["{run}", "--epoch", "12"], "no probe recorded for epoch 12"),
])
def test_cli_embed_bad_input_exits_2_with_one_line(gap_cam_run, tmp_path, capsys, argv, message):
    argv = [a.format(run=gap_cam_run.run_id) for a in argv]
    code = main(["embed", *argv, "--runs-dir", str(gap_cam_run.runs_dir), "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_worker_warm_up_starts_its_child_before_any_request():
    """The server asks for the worker at start-up, so UMAP compiles while nobody waits."""
    worker = EmbeddingWorker()
    try:
        worker.warm_up()
        assert worker._child is not None and worker._child.alive()
        assert not worker.busy()
    finally:
        worker.close()
    assert not worker._child
