"""A trained run as one standalone .py: its model, its data as torchvision loads it, and a
training loop with its settings, for a student to continue in a notebook without the lab.

The model blocks, the literals every user string goes through (:func:`py_str`,
:func:`doc_text`) and the file's layout come from :mod:`lab.export.code`; this adds the
data loading, the transforms, the settings and the loop, as templates filled with
literals only.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from string import Template

from lab.data.corrections import split_name
from lab.data.registry import FOLDER_PREFIX, normalise
from lab.export.code import INDENT, ExportError, checked_number, doc_text, model_blocks, module_source, py_str
from lab.model.init import INITS
from lab.model.layers import Shape, format_shape
from lab.model.spec import Summary, build_model, summarize
from lab.train.augment import get_augment
from lab.train.engine import OPTIMIZERS, lr_factor

TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
NOT_IN_TORCHVISION = ("cutout", "brightness", "contrast", "cutmix", "mixup")  # augmentations the file leaves out

RUN_IMPORTS = ("import argparse\nimport math\nfrom collections import OrderedDict\nfrom pathlib import Path\n\n"
               "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
               "from torch.utils.data import DataLoader\n")

_TORCHVISION_DATA = '''
def load_data(root: str = DATA_ROOT):
    """$title's train and test splits through torchvision, downloaded into ``root`` when missing."""
    from torchvision import datasets

    train = datasets.$cls(root, train=True, download=True, transform=transforms(train=True))
    val = datasets.$cls(root, train=False, download=True, transform=transforms(train=False))
    return train, val
'''

_FOLDER_DATA = '''
def load_data(root: str = DATA_ROOT):
    """Class folders through ImageFolder: ROOT/train/<class>/ with ROOT/test/ (or val/) when
    both exist, else ROOT/<class>/ with a random 20% of the images held out."""
    from torch.utils.data import Subset
    from torchvision import datasets

    root = Path(root)
    val_dir = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        return (datasets.ImageFolder(root / "train", transforms(train=True)),
                datasets.ImageFolder(val_dir, transforms(train=False)))
    train, val = datasets.ImageFolder(root, transforms(train=True)), datasets.ImageFolder(root, transforms(train=False))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    cut = len(order) - len(order) // 5
    return Subset(train, order[:cut]), Subset(val, order[cut:])
'''

_LAB_DATA = '''
def load_data(root: str = DATA_ROOT):
    """"$doc_name" is made by CNN Lab itself, so this one function needs the lab importable
    (run from the lab's folder, or add it to sys.path); the model and the loop do not."""
    from lab.data import load_dataset

    ds = load_dataset($name, root)
    return Images(ds.train_x, ds.train_y, transforms(train=True)), Images(ds.val_x, ds.val_y, transforms(train=False))


class Images(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) with labels, transformed one at a time like a torchvision dataset."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.labels[i])
'''

_LOOP = '''

def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return $optimizer


def run_epoch(model: nn.Module, loader: DataLoader, device: str, optimizer=None, scheduler=None) -> tuple[float, float]:
    """Mean loss and accuracy over ``loader``: trains when given an optimizer, else only evaluates
    (eval mode, no gradients, no label smoothing, as the lab evaluates)."""
    training = optimizer is not None
    model.train(training)
    loss_sum, correct, seen = 0.0, 0, 0
    with torch.set_grad_enabled(training):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)  # (B, NUM_CLASSES)
            loss = F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING if training else 0.0)
            if training:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return loss_sum / seen, correct / seen


def fit(model: nn.Module, train_set, val_set, epochs: int = EPOCHS, device: str = "cpu") -> list[dict]:
    """Train ``model`` with the run's optimizer, lr schedule and batch size; one line per epoch."""
    model.to(device)
    train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=1024)
    optimizer = make_optimizer(model)
    total = epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(SCHEDULE, step, total))
    history = []
    for epoch in range(1, epochs + 1):
        train_loss, train_acc = run_epoch(model, train_loader, device, optimizer, scheduler)
        val_loss, val_acc = run_epoch(model, val_loader, device)
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "val_loss": val_loss, "val_acc": val_acc})
        print(f"epoch {epoch}/{epochs}  train_loss {train_loss:.4f}  train_acc {train_acc:.4f}  "
              f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}", flush=True)
    return history


def find_weights() -> Path | None:
    """The run's weights file next to this one (best, else last), when it was downloaded too."""
    here = Path(__file__).resolve().parent
    return next((here / name for name in WEIGHTS if (here / name).exists()), None)


def load_net(weights: str | Path | None = None) -> Net:
    """``Net`` with the given state_dict file, else the run's own (:func:`find_weights`), else fresh weights."""
    model = Net()
    path = weights or find_weights()
    if path:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description="Continue training the run's model.")
    parser.add_argument("--data", default=DATA_ROOT, help=f"dataset folder (default {DATA_ROOT})")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--weights", default=None, help="state_dict to start from (default: the run's, if here)")
    parser.add_argument("--save", default="continued.pt", help="where to write the new state_dict")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_net(args.weights)
    print(f"starting from {args.weights or find_weights() or 'fresh weights'}, on {device}")
    fit(model, *load_data(args.data), epochs=args.epochs, device=device)
    torch.save(model.state_dict(), args.save)
    print(f"saved {args.save}")


if __name__ == "__main__":
    main()
'''

# torch.optim expression per optimizer, with the arguments lab.train.engine.make_optimizer passes.
_OPTIMIZER_CODE = {
    "adam": "torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)",
    "adamw": "torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)",
    "sgd": "torch.optim.SGD(model.parameters(), lr=LR, momentum=$momentum, nesterov=$nesterov, "
           "weight_decay=WEIGHT_DECAY)",
    "rmsprop": "torch.optim.RMSprop(model.parameters(), lr=LR, momentum=$momentum, weight_decay=WEIGHT_DECAY)",
    "adagrad": "torch.optim.Adagrad(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)",
}


def _optimizer_code(config: dict) -> str:
    momentum = checked_number("momentum", config.get("momentum", 0.9))
    # torch refuses nesterov without momentum; a run made before the lab refused it too trained without it
    nesterov = bool(config.get("nesterov", True)) and momentum > 0
    optimizer = config.get("optimizer", "adam")
    if optimizer not in _OPTIMIZER_CODE:
        raise ExportError(f"unknown optimizer {optimizer!r}; use one of: {', '.join(OPTIMIZERS)}")
    return Template(_OPTIMIZER_CODE[optimizer]).substitute(momentum=repr(momentum), nesterov=nesterov)


def _augment_code(augment: dict, shape: Shape) -> tuple[list[str], list[str]]:
    """(torchvision v2 transforms for the run's flips, affine warp and crop; the augmentations left out)."""
    augment = {key: checked_number(key, value) for key, value in augment.items() if not isinstance(value, str)}
    steps = []
    if augment.get("hflip"):
        steps.append(f"v2.RandomHorizontalFlip(p={augment['hflip']})")
    if augment.get("vflip"):
        steps.append(f"v2.RandomVerticalFlip(p={augment['vflip']})")
    rotation, shift, zoom = (augment.get(key, 0) for key in ("rotation", "shift", "zoom"))
    if rotation or shift or zoom:
        steps.append(f"v2.RandomAffine(degrees={rotation}, translate={(shift, shift) if shift else None}, "
                     f"scale={(1 - zoom, 1 + zoom) if zoom else None})")
    if augment.get("crop_padding"):
        steps.append(f"v2.RandomCrop({tuple(shape[1:])}, padding={augment['crop_padding']})")
    return steps, [key for key in NOT_IN_TORCHVISION if augment.get(key)]


def _transforms_code(config: dict, folder: bool) -> str:
    """``transforms(train)``: what the lab did to each image, as torchvision v2 steps."""
    shape = tuple(config["resolved"]["input"])
    augment, left_out = _augment_code(get_augment(config.get("augment")).to_dict(), shape)
    # A folder's images come in any size and mode: the lab resized them (and made them grey when all were).
    prepare = [f"v2.Resize({shape[1:]}, antialias=True)"] + (["v2.Grayscale(1)"] if shape[0] == 1 else [])
    steps = ["v2.ToImage(),  # a PIL image or a uint8 tensor -> (C, H, W) uint8", *(f"{s}," for s in prepare),
             "*augment,", "v2.ToDtype(torch.float32, scale=True),  # [0, 255] -> [0, 1]", "v2.Normalize(MEAN, STD),"]
    note = (f"\n\n{INDENT}Left out: the run's {', '.join(left_out)} (the lab applies them to whole batches "
            f"on the device).") if left_out else ""
    if augment:
        listed = "".join(f"{INDENT * 2}{step},\n" for step in augment)
        augment_line = f"augment = [\n{listed}{INDENT}] if train else []"
    else:
        augment_line = "augment: list = []  # the run trained without augmentation"
    listed_steps = "".join(f"{INDENT * 2}{step}\n" for step in steps)
    return (f"def transforms(train: bool):\n"
            f'{INDENT}"""Per image: a float tensor in [0, 1], normalised by MEAN and STD as in the lab; '
            f"training adds\n{INDENT}the run's augmentation where torchvision has it.{note}\n{INDENT}\"\"\"\n"
            f"{INDENT}from torchvision.transforms import v2\n\n"
            f"{INDENT}{augment_line}\n"
            f"{INDENT}return v2.Compose([\n{listed_steps}{INDENT}])\n")


def _is_folder(dataset: str) -> bool:
    return dataset.strip().lower().startswith(FOLDER_PREFIX)


def _data_code(dataset: str) -> tuple[str, str]:
    """(DATA_ROOT's value, ``load_data`` source) for the run's dataset; a corrected version (lab.data.corrections)
    loads as the data set it corrects, and the header says so."""
    dataset = split_name(dataset)[0]
    if _is_folder(dataset):
        folder = Path(dataset.strip()[len(FOLDER_PREFIX):])
        return (folder.stem if folder.suffix.lower() == ".zip" else folder.name), _FOLDER_DATA
    name = normalise(dataset)
    if name in TORCHVISION_DATASETS:
        return "data", Template(_TORCHVISION_DATA).substitute(title=name, cls=TORCHVISION_DATASETS[name])
    return "data", Template(_LAB_DATA).substitute(name=py_str(name), doc_name=doc_text(name))


def _floats(name: str, values: list[float], low: float = 0.0) -> str:
    items = ", ".join(f"{max(checked_number(name, v), low):.6g}" for v in values)
    return f"({items}{',' if len(values) == 1 else ''})"


def _run_header(summary: Summary, config: dict, stem: str, data_root: str) -> str:
    base, version = split_name(config["dataset"])
    dataset = f"the image folder {data_root}" if _is_folder(base) else base
    if version:
        dataset += (f" with the lab's corrections {version} (images dropped or relabelled there; load_data() "
                    "reads the data as it is)")
    return (
        f'"""{doc_text(summary.name)} trained on {doc_text(dataset)} in CNN Lab, with a loop to go on training it.\n\n'
        f"Input {format_shape(summary.input_shape)}, {summary.num_classes} classes, {summary.total_params:,} "
        "parameters. ``load_net()`` is the model\n"
        f"with the run's weights when {stem}_best.pt (or _last.pt) lies next to this file; "
        "``load_data()``\nand ``fit()`` continue training with the run's settings and plain torchvision "
        "data loading:\n\n"
        f"    python {stem}.py --epochs 5                     # or, in a notebook:\n"
        f"    from {stem} import fit, load_data, load_net\n"
        "    model = load_net(); fit(model, *load_data())\n\n"
        "The model takes normalised images: (pixels / 255 - MEAN) / STD, per channel.\n"
        '"""\n'
    )


def run_code(config: dict, stem: str = "model") -> str:
    """A standalone .py for a run: its model, its data as torchvision loads it, and a training
    loop with its hyperparameters, for a student to continue in a notebook.

    ``config`` is the run's config.json (its ``resolved`` facts give the input shape,
    classes and normalisation); ``stem`` names the weights files the code looks for
    (``<stem>_best.pt``, ``<stem>_last.pt``, as :func:`export_file_name` names them).
    Importing the file trains nothing: training runs under ``__main__`` or when
    ``fit`` is called.
    """
    resolved = config["resolved"]
    shape, classes = tuple(resolved["input"]), list(resolved["classes"])
    summary = summarize(config["spec"], shape, len(classes))
    model = build_model(config["spec"], shape, len(classes))
    run_init = config.get("init", "default")  # runs made before the setting kept PyTorch's
    if not isinstance(run_init, str) or run_init not in INITS:
        raise ExportError(f"unknown init {run_init!r}; use one of: {', '.join(INITS)}")
    data_root, load_data = _data_code(config["dataset"])
    settings_code = "\n".join([
        "# ---------------------------------------------------------------- training, as the run was set up\n",
        f"CLASSES = [{', '.join(py_str(name) for name in classes)}]",
        f"DATA_ROOT = {py_str(data_root)}  # where load_data() finds (or downloads) the images",
        f"MEAN = {_floats('mean', resolved['mean'])}  # per channel, of the training images on the [0, 1] scale",
        f"STD = {_floats('std', resolved['std'], low=1e-3)}",
        f"EPOCHS = {checked_number('epochs', config['epochs'])!r}",
        f"BATCH_SIZE = {checked_number('batch_size', config['batch_size'])!r}",
        f"LR = {checked_number('lr', config['lr'])!r}",
        f"WEIGHT_DECAY = {checked_number('weight_decay', config.get('weight_decay', 0.0))!r}",
        f"LABEL_SMOOTHING = {checked_number('label_smoothing', config.get('label_smoothing', 0.0))!r}",
        f"SCHEDULE = {py_str(config.get('schedule', 'none'))}  # none | step | cosine | onecycle: see lr_factor",
        f"WEIGHTS = ({py_str(stem + '_best.pt')}, {py_str(stem + '_last.pt')})  # looked for next to this file, "
        "in this order",
    ])
    return module_source(_run_header(summary, config, stem, data_root), RUN_IMPORTS,
                         *model_blocks(summary, model, run_init), settings_code,
                         _transforms_code(config, _is_folder(config["dataset"])), load_data,
                         inspect.getsource(lr_factor), Template(_LOOP).substitute(optimizer=_optimizer_code(config)))


