"""Datasets as uint8 tensors plus class names (and object boxes for the built-in shapes).

    load_dataset("shapes")                 built in, offline, the default
    load_dataset("digits")                 scikit-learn's 8x8 digits, offline
    load_dataset("fashion-mnist")          from data_dir or /usr/share/datasets (Debian)
    load_dataset("cifar10", download=True) fetched when missing (lab.data.download)
    download_dataset("cifar10", progress=cb) the same download, with progress, for a page or the CLI
    load_dataset("folder:PATH")            a folder (or .zip) of class folders
    load_dataset("shapes@fixes:VERSION")   with a version of its corrections applied (lab.data.corrections)
    import_zip(uploaded_file)              a user's upload, checked and unpacked safely

Nothing here imports Streamlit: pages call these functions and show the results.
"""

from lab.data.dataset import Dataset, DatasetError, DatasetInfo, class_counts, examples_per_class
from lab.data.download import download_dataset, download_mb
from lab.data.registry import DEFAULT, list_datasets, load_dataset
from lab.data.upload import ImportReport, import_zip

__all__ = [
    "DEFAULT",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "ImportReport",
    "class_counts",
    "download_dataset",
    "download_mb",
    "examples_per_class",
    "import_zip",
    "list_datasets",
    "load_dataset",
]
