"""Temporary benchmark: insight on vs off, probe overhead per epoch, PCA and t-SNE times."""
import json
import sys
import tempfile
import time

import numpy as np
import torch

from lab.engine import Callback, RunRecorder, Trainer, TrainConfig, run_record
from lab.insight.embed import EmbeddingWorker, embed_epoch
from lab.insight.probe import ProbeRecorder, load_probe
from lab.presets import get_preset
from lab.runs import RunStore


class Timed(ProbeRecorder):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.record_s = []

    def _record(self, trainer, epoch):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        super()._record(trainer, epoch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        self.record_s.append(time.perf_counter() - t)


class Clock(Callback):
    def on_run_start(self, trainer):
        self.t0 = time.perf_counter()

    def on_run_end(self, trainer, status, message):
        self.total = time.perf_counter() - self.t0


def run(insight, device, epochs, limit, batch, probe_size, root, worker=None):
    cfg = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset="shapes", epochs=epochs, batch_size=batch,
                                     lr=3e-3, device=device, train_limit=limit, probe_size=probe_size,
                                     insight=insight))
    store = RunStore(root)
    trainer = Trainer(cfg)
    run_id = store.create(run_record(cfg, trainer))
    clock = Clock()
    cbs = [clock, RunRecorder(store, run_id)]
    rec = None
    if insight:
        rec = Timed(store, run_id, size=probe_size, worker=worker)
        cbs.append(rec)
    trainer.callbacks = cbs
    res = trainer.run()
    assert res.status == "finished", res.message
    h = res.history
    n = len(trainer.dataset.train_y[:limit or None])
    epoch_s = [m["seconds"] for m in h]
    out = dict(insight=insight, train_ips=[round(m["images_per_sec"]) for m in h], epoch_s=[round(s, 3) for s in epoch_s],
               run_s=round(clock.total, 2), images_per_run_s=round(n * epochs / clock.total))
    if rec:
        out["record_s"] = [round(s, 4) for s in rec.record_s]
        out["record_share_of_epoch"] = [round(r / e, 4) for r, e in zip(rec.record_s[1:], epoch_s)]
        feats = [load_probe(store.path(run_id), e).features for e in range(epochs + 1)]
        prev, t = None, time.perf_counter()
        for f in feats:
            prev = embed_epoch(f, "pca", prev)
        out["pca_s_per_epoch"] = round((time.perf_counter() - t) / len(feats), 4)
        out["run_dir"] = str(store.path(run_id))
    return out


def main():
    device = sys.argv[1]
    epochs, limit, batch = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    root = tempfile.mkdtemp()
    results = []
    run(True, device, 1, min(limit or 2000, 2000), batch, 1000, root)  # warm-up (cudnn, data cache)
    for insight in (False, True, False, True):
        r = run(insight, device, epochs, limit, batch, 1000, root)
        print(json.dumps(r), flush=True)
        results.append(r)
    if len(sys.argv) > 5 and sys.argv[5] == "tsne":
        run_dir = results[-1]["run_dir"]
        feats = [load_probe(run_dir, e).features for e in range(epochs + 1)]
        t = time.perf_counter()
        import sklearn.manifold  # noqa: F401
        print("sklearn.manifold import s", round(time.perf_counter() - t, 2))
        prev = None
        for e, f in enumerate(feats):
            t = time.perf_counter()
            prev = embed_epoch(f, "tsne", prev)
            print(f"tsne epoch {e} ({'warm' if e else 'cold'}) {len(f)} points: {time.perf_counter() - t:.2f} s")
        # training while the worker makes t-SNE maps of another run, from scratch
        import glob, os
        for p in glob.glob(os.path.join(run_dir, "probe", "map_tsne_*.npy")):
            os.remove(p)
        worker = EmbeddingWorker()
        worker.request(run_dir, "tsne")
        r = run(False, device, epochs, limit, batch, 1000, root)
        r["with_tsne_worker_busy"] = worker.busy()
        print("training during t-SNE worker:", json.dumps(r), flush=True)
        worker.wait()
        worker.close()


if __name__ == "__main__":
    main()
