"""Looking inside a network: its feature space epoch by epoch, and where it looks.

    probe.py   ProbeRecorder: a Trainer listener recording a fixed, stratified probe of
               val images (features, predictions, labels) and CAM samples every epoch
    embed.py   PCA / t-SNE / UMAP maps of the probe, aligned epoch to epoch (numpy only,
               the heavy libraries imported when a map needs them)
    maps.py    the cache of those maps in the run folder, and the frames a page draws
    best.py    the epochs where validation accuracy improved: the write-up's "best epochs only"
    worker.py  EmbeddingWorker: maps made off the page's thread, t-SNE and UMAP in a child
               process (``python -m lab.insight.worker --serve``); k-NN accuracy is in probe.py
    cam.py     CAM, Grad-CAM, Grad-CAM++, Score-CAM, Eigen-CAM behind one registry: raw maps
    overlay.py colour maps and a heatmap over its image: display, apart from the maps
    load.py    load_run_model: a run's model rebuilt from its folder alone
    answers.py ClassAnswers: a result's predicted class and confidence, from its probabilities
    validation.py  one checkpoint on the whole val split: confusion matrix, surest mistakes
    label_issues.py  confident learning: suspected label errors from out-of-sample (k-fold) probabilities
    mistakes.py    what ``python -m lab mistakes`` does: a confusion cell's images, label issues, marks
               written as a corrected data set, and the retrain grouped with the original run
    activations.py every conv layer's feature maps for one image, the first layer's filters
    hooks.py   layer lookup by name and the hook context manager everything uses
    errors.py  InsightError: input a user can fix, with what to use instead
    tools.py   what ``python -m lab explain`` and ``embed`` do, and one image by every method

Import from the modules themselves; this package imports nothing, so the embedding worker's
child process loads numpy and the map modules without torch.
"""
