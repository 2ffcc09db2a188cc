"""``kpdev pack build|inspect``: make a Knowledge Pack (.kp) and look inside one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kpdev.host.atomic import refuse_existing
from kpdev.host.cli.options import (
    ForceOpt,
    JsonOpt,
    emit,
    err,
    key_value,
    out,
    parse_window,
    sub_app,
)
from kpdev.host.errors import UsageError
from kpdev.host.plain import human_bytes

pack_app = sub_app(
    "Knowledge Packs (.kp): one or more models with their class labels, the feature "
    "pipeline that turns raw sensor windows into the model input, test vectors, accuracy and "
    "cost, in one zip file (docs/packs.md). `build` makes one, `inspect` shows one; deploy it "
    "with `kpdev deploy PACK.kp`. Every pack command takes --json.",
    short_help="Build and inspect Knowledge Packs (.kp): models, pipeline, test vectors.",
)

if TYPE_CHECKING:  # imported where used, so that commands start fast
    from rich.table import Table

    from kpdev.host.packs.pack import Pack

_SPLIT = re.compile(r"[,\n]")


# -- option parsing ------------------------------------------------------------------------
def _models(items: list[str]) -> dict[str, Path]:
    """``ID=PATH`` (or one bare PATH, id "main") -> {id: path}, in the order given."""
    models: dict[str, Path] = {}
    for item in items:
        mid, sep, path = item.partition("=")
        if not sep:
            if len(items) > 1:
                raise UsageError(
                    f"--model {item!r}: with several models write each as ID=PATH, e.g. "
                    "--model main=model.tflite"
                )
            mid, path = "main", item
        mid = mid.strip()
        if not mid or not path:
            raise UsageError(f"--model {item!r}: write it as ID=PATH, e.g. main=model.tflite")
        if mid in models:
            raise UsageError(f"--model: id {mid!r} is given twice")
        models[mid] = Path(path)
    if not models:
        raise UsageError("give at least one model: --model main=model.tflite")
    return models


def _labels(text: str, where: str) -> list[str]:
    labels = [x.strip() for x in _SPLIT.split(text) if x.strip()]
    if not labels:
        raise UsageError(f"{where}: no class labels")
    return labels


def _labels_file(path: str, where: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{where}: cannot read {path}: {e.strerror or e}")
    lines = [line.strip() for line in text.splitlines()]
    labels = [line for line in lines if line and not line.startswith("#")]
    if not labels:
        raise UsageError(f"{where}: {path} holds no class labels (one a line)")
    return labels


def _per_model(item: str, ids: list[str]) -> tuple[str | None, str]:
    """``ID=REST`` when ID is one of the models, else (None, item)."""
    head, sep, rest = item.partition("=")
    if sep and head.strip() in ids:
        return head.strip(), rest
    return None, item


def _classes(
    items: list[str], files: list[str], ids: list[str], root: str
) -> dict[str, list[str]]:
    """Class labels per model from --classes and --classes-file; an entry without ``ID=`` is
    the root model's (the only model's, with one)."""
    found: dict[str, list[str]] = {}
    given = [(x, "--classes", _labels) for x in items] + [
        (x, "--classes-file", _labels_file) for x in files
    ]
    for item, option, parse in given:
        mid, rest = _per_model(item, ids)
        mid = mid or root
        if mid in found:
            raise UsageError(f"{option}: classes of model {mid!r} are given twice")
        found[mid] = parse(rest, f"{option} {item!r}")
    missing = [mid for mid in ids if mid not in found]
    if missing:
        raise UsageError(
            f"no class labels for model {missing[0]!r}: give --classes {missing[0]}=LABEL,LABEL,"
            f"... or --classes-file {missing[0]}=FILE"
        )
    return found


def _routes(items: list[str], classes: dict[str, list[str]]) -> dict[str, dict[int, str]]:
    """``PARENT:CLASS=CHILD`` (CLASS an index or a label of PARENT) -> {parent: {index: child}}."""
    routes: dict[str, dict[int, str]] = {mid: {} for mid in classes}
    for item in items:
        left, sep, child = item.partition("=")
        parent, colon, cls = left.partition(":")
        parent, cls, child = parent.strip(), cls.strip(), child.strip()
        if not sep or not colon or not parent or not cls or not child:
            raise UsageError(
                f"--route {item!r}: write it as PARENT:CLASS=CHILD, e.g. main:1=moving or "
                "main:Walking=moving"
            )
        if parent not in classes:
            raise UsageError(f"--route {item!r}: no model {parent!r} (give it with --model)")
        labels = classes[parent]
        if cls.isdigit():
            index = int(cls)
        elif cls in labels:
            index = labels.index(cls)
        else:
            raise UsageError(
                f"--route {item!r}: {cls!r} is neither a class index nor a class of {parent!r} "
                f"({', '.join(labels)})"
            )
        if index in routes[parent]:
            raise UsageError(f"--route {item!r}: class {index} of {parent!r} is routed twice")
        routes[parent][index] = child
    return routes


def _pairs(items: list[str], option: str, ids: list[str], example: str) -> dict[str, str]:
    """``ID=VALUE`` -> {id: value}; with one model, a bare VALUE is that model's."""
    found: dict[str, str] = {}
    for item in items:
        mid, sep, value = item.partition("=")
        if not sep:
            if len(ids) != 1:
                raise UsageError(f"{option} {item!r}: write it as {example}")
            mid, value = ids[0], item
        mid = mid.strip()
        if mid not in ids:
            raise UsageError(f"{option} {item!r}: no model {mid!r} (models: {', '.join(ids)})")
        if mid in found:
            raise UsageError(f"{option}: model {mid!r} is given twice")
        found[mid] = value.strip()
    return found


def _options(items: list[str], ids: list[str]) -> dict[str, dict[str, Any]]:
    """``ID:KEY=VALUE`` (with one model, ``KEY=VALUE``) -> {id: {key: value}}."""
    found: dict[str, dict[str, Any]] = {mid: {} for mid in ids}
    example = "main:arena_size=16384"
    for item in items:
        left, sep, value = item.partition("=")
        mid, colon, _ = left.partition(":")
        if not colon:  # KEY=VALUE: with one model, that model's
            mid, rest = (ids[0] if len(ids) == 1 else ""), item
        else:
            rest = item[len(mid) + 1 :]
        mid = mid.strip()
        if not mid:
            raise UsageError(f"--option {item!r}: write it as ID:KEY=VALUE, e.g. {example}")
        if mid not in found:
            raise UsageError(f"--option {item!r}: no model {mid!r} (models: {', '.join(ids)})")
        key, number = key_value(rest, "--option", example)
        found[mid][key] = number
    return found


# -- build ---------------------------------------------------------------------------------
@pack_app.command()
def build(
    out_path: Annotated[
        Path, typer.Argument(metavar="OUT.kp", help="Pack file to write.", show_default=False)
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="ID=PATH",
            help="A model file (.tflite, .vmfb or .fbz) and the id that names it in the pack "
            "(1-16 of A-Z a-z 0-9 _ -). Repeatable. A single model may be a bare PATH (id main). "
            "Not with --learner.",
            show_default=False,
        ),
    ] = None,
    classes: Annotated[
        list[str] | None,
        typer.Option(
            "--classes",
            "-c",
            metavar="[ID=]LABELS",
            help="Class labels, comma-separated in output order: LABEL,LABEL,... for the root "
            "model (the only one, with one model), or ID=LABEL,LABEL,... for model ID. "
            "Repeatable.",
            show_default=False,
        ),
    ] = None,
    classes_file: Annotated[
        list[str] | None,
        typer.Option(
            "--classes-file",
            metavar="[ID=]FILE",
            help="Class labels from a file, one a line in output order (# starts a comment): "
            "FILE for the root model, ID=FILE for model ID. Repeatable.",
            show_default=False,
        ),
    ] = None,
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            "-r",
            metavar="PARENT:CLASS=CHILD",
            help="When model PARENT picks CLASS (an index or a label), run "
            "model CHILD on the same model input; its class is then the answer. Repeatable. "
            "Classes not routed are final.",
            show_default=False,
        ),
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option(
            "--parent",
            metavar="CHILD=PARENT",
            help="States a child's parent; optional, --route implies it (given, the two must "
            "agree). Repeatable.",
            show_default=False,
        ),
    ] = None,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            metavar="FILE",
            help="Feature pipeline spec (.yml or .json, docs/packs.md): raw sensor windows -> "
            "the root model's input. Its output must match that input (dtype, shape, scale, "
            "zero point). Without it, the models take the data as it is.",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            metavar="SPEC",
            help="Labelled data for test vectors and accuracy: .npz, .ts, .csv, a folder of "
            ".ts/.csv/.wav files, or sklearn:digits. Its class names must be class labels of "
            "the pack. Without it the test vectors are seeded random inputs and the pack has "
            "no metrics.",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            metavar="SIZE,STRIDE",
            help="Window size and stride in samples, to cut the dataset's recordings; "
            "default: the pipeline's window.",
            show_default=False,
        ),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            "--test-fraction",
            metavar="F",
            help="Share of each class held out for testing (0..1); default: the dataset's own "
            "train/test fold, or 0.25.",
            min=0.0,
            max=1.0,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the test split and of the test vectors.")
    ] = 0,
    vectors: Annotated[
        int, typer.Option("--vectors", help="How many test vectors to store.", min=0)
    ] = 4,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Pack name (1-24 of A-Z a-z 0-9 _ -); default: the file name's stem.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[str, typer.Option("--version", help="Pack version.")] = "1.0.0",
    description: Annotated[
        str, typer.Option("--description", help="Free text kept in the manifest.")
    ] = "",
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            metavar="ID=NAME",
            help="The backend model ID must run on (e.g. main=tflite_micro); by "
            "default the device's first choice for the format. The host reference runtime "
            "uses the same one. Repeatable.",
            show_default=False,
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-O",
            metavar="ID:KEY=VALUE",
            help="A load option of model ID, kept in the pack and used on the "
            "device and the host (as kpdev deploy -O), e.g. main:arena_size=16384; with one "
            "model KEY=VALUE. A VALUE that reads as a number is one. Repeatable.",
            show_default=False,
        ),
    ] = None,
    learner: Annotated[
        str | None,
        typer.Option(
            "--learner",
            metavar="memory|akida",
            help="Build a pack whose classifier is a learner the device trains (kpdev learn) "
            "instead of models: memory (few-shot nearest neighbours over the pipeline's "
            "output, any board) or akida (akida's own edge learning; the pipeline's output "
            "needs a thermometer encoding). Needs --pipeline and --dataset; --classes gives "
            "the classes it starts with (default: the dataset's).",
            show_default=False,
        ),
    ] = None,
    learner_option: Annotated[
        list[str] | None,
        typer.Option(
            "--learner-option",
            "-L",
            metavar="KEY=VALUE",
            help="A learner setting: memory per_class (16), k (1), metric (l1|l2), mode "
            "(knn|prototype); akida neurons_per_class, num_weights, learning_competition; "
            "either max_classes (32). Repeatable.",
            show_default=False,
        ),
    ] = None,
    learn_shots: Annotated[
        int,
        typer.Option(
            "--learn-shots",
            help="With --learner: teach it this many training samples per class on the host "
            "before writing the pack (0: it starts knowing its classes by name only).",
            min=0,
        ),
    ] = 0,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Build a Knowledge Pack from models, class labels, a pipeline and a dataset.

    Every model is loaded in the host reference runtime (the device's own
    Linux backends) to read its inputs and outputs, and checked: one label
    per output value, the pipeline making the root model's input, every
    model taking that same input. Test vectors and each model's outputs for
    them go into the pack; with --dataset, so does the accuracy of the whole
    pack (root, then routed children) on the test split, and the cost
    (bytes, arena, RAM, host time).

    Examples:

      kpdev pack build hand.kp -m model.tflite -c rock,paper,scissors

      kpdev pack build motions.kp -m main=mlp.tflite \\
        --classes-file classes.txt --pipeline pipeline.yml \\
        --dataset host/demo/basicmotions.npz

      kpdev pack build tree.kp -m main=router.tflite \\
        -m calm=calm.tflite -m vigorous=vigorous.tflite \\
        -c main=calm,vigorous -c calm=Standing,Walking \\
        -c vigorous=Running,Badminton \\
        --route main:calm=calm --route main:vigorous=vigorous \\
        --pipeline pipeline.yml --dataset data.npz
    """
    from kpdev.host.cli.render import progress_view
    from kpdev.host.datasets import load_dataset
    from kpdev.host.features import load_spec
    from kpdev.host.packs.build import ModelSpec, build_pack
    from kpdev.host.packs.pack import NAME_RE, read_pack

    refuse_existing(out_path, force, "pack")
    if learner is not None:
        _build_learner(
            out_path,
            learner,
            learner_option or [],
            learn_shots,
            model=model,
            classes=classes,
            pipeline=pipeline,
            dataset=dataset,
            window=window,
            test_fraction=test_fraction,
            seed=seed,
            vectors=vectors,
            name=name,
            version=version,
            description=description,
            json_=json_,
        )
        return
    if learner_option or learn_shots:
        raise UsageError("--learner-option and --learn-shots go with --learner memory|akida")
    paths = _models(model or [])
    ids = list(paths)
    pack_name = name if name is not None else out_path.stem
    if name is None and not NAME_RE.fullmatch(pack_name):
        raise UsageError(
            f"{out_path.name}: its stem is not a pack name (1-24 of A-Z a-z 0-9 _ -); "
            "give one with --name"
        )
    routes_given = route or []
    # The root is the model nothing routes to; plain --classes belong to it.
    targets = {item.partition("=")[2].strip() for item in routes_given}
    roots = [mid for mid in ids if mid not in targets] or ids
    labels = _classes(classes or [], classes_file or [], ids, roots[0])
    routes = _routes(routes_given, labels)
    parents = _pairs(parent or [], "--parent", ids, "CHILD=PARENT, e.g. calm=main")
    backends = _pairs(backend or [], "--backend", ids, "ID=NAME, e.g. main=tflite_micro")
    options = _options(option or [], ids)
    specs = [
        ModelSpec(
            id=mid,
            path=paths[mid],
            classes=labels[mid],
            backend=backends.get(mid),
            options=options[mid],
            parent=parents.get(mid),
            results=routes[mid],
        )
        for mid in ids
    ]
    spec = load_spec(pipeline) if pipeline is not None else None
    data = None
    if dataset is not None:
        cut = parse_window(window)
        if cut is None and spec is not None:
            cut = (spec["window"]["size"], spec["window"]["stride"])
        data = load_dataset(dataset, window=cut)
    elif window is not None or test_fraction is not None:
        option = "--window" if window is not None else "--test-fraction"
        raise UsageError(f"{option} applies to the --dataset: give a dataset too")
    with progress_view(not json_) as bar:
        task = bar.add_task("host accuracy", total=None, visible=data is not None)
        manifest = build_pack(
            out_path,
            specs,
            name=pack_name,
            version=version,
            description=description,
            pipeline=spec,
            dataset=data,
            test_fraction=test_fraction,
            seed=seed,
            n_vectors=vectors,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    pack = read_pack(out_path)
    if json_:
        emit(pack.summary())
        return
    m = manifest
    size = human_bytes(out_path.stat().st_size)
    out.print(
        f"wrote [bold]{out_path}[/bold] ({size}): pack {m['name']} {m['version']}, "
        f"{len(m['models'])} model{'s' if len(m['models']) != 1 else ''}, "
        f"{len(m['test_vectors'])} test vectors"
    )
    if m.get("metrics"):
        mt = m["metrics"]
        out.print(
            f"accuracy {mt['accuracy']:.1%} on {mt['dataset']['n_test']} test samples of "
            f"{mt['dataset']['name']} ({mt['measured_on']})"
        )
    err.print(f"look inside with: kpdev pack inspect {out_path}", style="dim")


# -- inspect -------------------------------------------------------------------------------
def _num(value: Any, fmt: str = "{:.3g}") -> str:
    return "-" if value is None else fmt.format(value)


def _header(pack: Pack) -> Table:
    from rich.table import Table

    m = pack.manifest
    table = Table(show_header=False, title=f"Knowledge Pack {m['name']} {m['version']}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("file", pack.path)
    table.add_row("created", m.get("created") or "-")
    table.add_row("kpdev", m.get("kpdev") or "-")
    table.add_row("schema", str(m["schema"]))
    if m.get("description"):
        table.add_row("description", m["description"])
    root = pack.root()
    table.add_row("root model", root["id"] if root else "none: the learner classifies")
    learning = pack.learning
    if learning is not None:
        encoding = (learning["input"] or {}).get("encoding")
        table.add_row(
            "learner",
            f"{learning['learner']} over {learning['input']['dtype']} "
            f"{learning['input']['shape']}"
            + (f", {encoding['kind']} encoded ({encoding['levels']} levels)" if encoding else "")
            + f"; classes {', '.join(learning['classes'])} (at most {learning['max_classes']})",
        )
        options = learning.get("options") or {}
        if options:
            table.add_row("learner options", ", ".join(f"{k}={v}" for k, v in options.items()))
        learned = learning.get("learned")
        if learned:
            table.add_row(
                "learned",
                f"on {learned.get('board')} in session {learned.get('session')}: "
                f"{learned.get('samples')} samples, exported {learned.get('exported')} from "
                f"{learned['from']['name']} {learned['from']['version']}",
            )
        elif learning.get("pretrained"):
            p = learning["pretrained"]
            table.add_row("pretrained", f"{p['shots']} shots/class of {p['dataset']} (host)")
    table.add_row("test vectors", str(len(m["test_vectors"])))
    return table


def _models_table(pack: Pack) -> Table:
    from rich.table import Table

    table = Table(title="models")
    for col in ("id", "format", "backend", "bytes", "sha256", "parent"):
        table.add_column(col, justify="right" if col == "bytes" else "left", no_wrap=True)
    for x in pack.models:
        table.add_row(
            x["id"],
            x["format"],
            x.get("backend") or "default",
            human_bytes(x["bytes"]),
            x["sha256"][:12],
            x.get("parent") or "- (root)",
        )
    return table


def _tensors_table(pack: Pack) -> Table:
    from rich.table import Table

    table = Table(title="model inputs and outputs")
    for col in ("model", "tensor", "name", "dtype", "shape", "quantization"):
        table.add_column(col)
    for x in pack.models:
        first = True
        for which in ("inputs", "outputs"):
            for k, t in enumerate(x[which]):
                scale = t.get("scale")
                if isinstance(scale, list):
                    quant = f"per-channel (axis {t.get('axis')})"
                elif scale is not None:
                    quant = f"scale {scale:.6g}, zp {t.get('zero_point')}"
                else:
                    quant = "-"
                table.add_row(
                    x["id"] if first else "",
                    f"{which[:-1]} {k}",
                    t["name"],
                    t["dtype"],
                    "[" + ", ".join(str(d) for d in t["shape"]) + "]",
                    quant,
                )
                first = False
    return table


def _classes_table(pack: Pack) -> Table:
    from rich.table import Table

    table = Table(title="class map")
    for col in ("model", "index", "label", "routes to"):
        table.add_column(col)
    for x in pack.models:
        results = x.get("results") or {}
        for i, label in enumerate(x["classes"]):
            table.add_row(x["id"] if i == 0 else "", str(i), label, results.get(str(i), "final"))
    return table


def _pipeline_table(spec: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(show_header=False, title="pipeline")
    table.add_column(style="bold")
    table.add_column()
    w = spec["window"]
    rate = spec.get("rate_hz")
    table.add_row(
        "window",
        f"{w['size']} samples, stride {w['stride']}" + (f" at {rate:g} Hz" if rate else ""),
    )
    table.add_row(
        "input",
        f"{spec.get('input_dtype', 'float32')} x {len(spec['axes'])} axes: "
        + ", ".join(spec["axes"]),
    )
    feats = []
    for f in spec["features"]:
        extra = ", ".join(f"{k}={v}" for k, v in f.items() if k != "gen")
        feats.append(f["gen"] + (f"({extra})" if extra else ""))
    table.add_row("features", ", ".join(feats))
    scale = spec.get("scale")
    table.add_row("scaling", scale["kind"] if scale else "none")
    o = spec.get("output") or {}
    quant = ""
    if o.get("scale") is not None:
        quant = f", scale {o['scale']:.6g}, zero point {o.get('zero_point', 0)}"
    shape = f" {o['shape']}" if o.get("shape") else ""
    table.add_row("output", f"{o.get('dtype', 'float32')}{shape}{quant}")
    return table


def _metrics_tables(metrics: dict[str, Any]) -> list[Table]:
    from rich.table import Table

    ds = metrics.get("dataset") or {}
    head = Table(show_header=False, title=f"metrics ({metrics.get('measured_on', '-')})")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("dataset", f"{ds.get('name', '-')} ({ds.get('source', '-')})")
    head.add_row(
        "split",
        f"{ds.get('n_train', '-')} train, {ds.get('n_test', '-')} test"
        + (f" ({ds['split']})" if ds.get("split") else "")
        + (f", test fraction {ds['test_fraction']:g}" if ds.get("test_fraction") else "")
        + f", seed {ds.get('seed')}",
    )
    head.add_row("accuracy", f"{metrics['accuracy']:.1%}")
    if metrics.get("macro_f1") is not None:
        head.add_row("macro F1", f"{metrics['macro_f1']:.3f}")
    per = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for label, r in (metrics.get("per_class") or {}).items():
        per.add_row(
            label,
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            str(r["support"]),
        )
    classes = metrics.get("classes") or []
    confusion = Table(title="confusion (rows: true, columns: predicted)")
    confusion.add_column("")
    for c in classes:
        confusion.add_column(c, justify="right")
    for c, row in zip(classes, metrics.get("confusion") or [], strict=False):
        confusion.add_row(c, *[str(v) for v in row])
    return [head, per, confusion]


def _cost_table(cost: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="cost")
    for col in ("part", "bytes", "arena / buffers", "host µs", "backend on host"):
        table.add_column(col, justify="left" if col in ("part", "backend on host") else "right")
    for mid, c in (cost.get("models") or {}).items():
        table.add_row(
            f"model {mid}",
            human_bytes(c.get("bytes")),
            human_bytes(c.get("arena_bytes")),
            _num(c.get("host_us"), "{:.1f}"),
            c.get("backend") or "-",
        )
    p = cost.get("pipeline")
    if p:
        table.add_row(
            f"pipeline ({p['features']} features)",
            f"window {human_bytes(p['window_bytes'])}",
            human_bytes(p.get("buffer_bytes")),
            "-",
            "-",
        )
    if cost.get("learner_memory_bytes"):
        table.add_row(
            "learner memory (at most)", "-", human_bytes(cost["learner_memory_bytes"]), "-", "-"
        )
    table.add_section()
    table.add_row("models stored", human_bytes(cost.get("model_bytes")), "", "", "")
    ram = cost.get("ram_bytes")
    table.add_row(
        "RAM planned",
        "unknown (an engine does not report its arena)" if ram is None else human_bytes(ram),
        "",
        "",
        "",
    )
    return table


def _build_learner(
    out_path: Path,
    learner: str,
    settings: list[str],
    learn_shots: int,
    *,
    model: list[str] | None,
    classes: list[str] | None,
    pipeline: Path | None,
    dataset: str | None,
    window: str | None,
    test_fraction: float | None,
    seed: int,
    vectors: int,
    name: str | None,
    version: str,
    description: str,
    json_: bool,
) -> None:
    from kpdev.host.datasets import load_dataset
    from kpdev.host.features import load_spec
    from kpdev.host.packs.learner import build_learning_pack
    from kpdev.host.packs.pack import read_pack

    if model:
        raise UsageError("--learner builds its own classifier: leave out --model")
    if pipeline is None or dataset is None:
        raise UsageError("--learner needs --pipeline (what it learns from) and --dataset")
    options = dict(key_value(item, "--learner-option", "k=3") for item in settings)
    labels = None
    if classes:
        labels = [x.strip() for text in classes for x in _SPLIT.split(text) if x.strip()]
    pack_name = name if name is not None else out_path.stem
    spec = load_spec(pipeline)
    cut = parse_window(window) or (spec["window"]["size"], spec["window"]["stride"])
    data = load_dataset(dataset, window=cut)
    build_learning_pack(
        out_path,
        learner=learner,
        pipeline=spec,
        dataset=data,
        name=pack_name,
        version=version,
        description=description,
        classes=labels,
        learn_shots=learn_shots,
        options=options,
        test_fraction=test_fraction,
        seed=seed,
        n_vectors=vectors,
    )
    pack = read_pack(out_path)
    if json_:
        emit(pack.summary())
        return
    lrn = pack.learning
    metrics = pack.manifest.get("metrics") or {}
    acc = metrics.get("accuracy")
    article = "an" if lrn["learner"] == "akida" else "a"
    taught = f"; taught {learn_shots} shots/class, host accuracy {acc:.3f}" if acc else ""
    out.print(
        f"wrote [bold]{out_path}[/bold]: {pack.name} {pack.manifest['version']}, {article} "
        f"{lrn['learner']} learner over {lrn['input']['shape']} {lrn['input']['dtype']}, "
        f"classes {', '.join(lrn['classes'])}{taught}; {human_bytes(out_path.stat().st_size)}"
    )


@pack_app.command()
def inspect(
    pack_path: Annotated[
        Path, typer.Argument(metavar="PACK.kp", help="Pack file to show.", show_default=False)
    ],
    json_: JsonOpt = False,
) -> None:
    """Check a Knowledge Pack and show what is in it.

    The pack is checked as a deploy would (zip, manifest, each model's SHA-256, the model
    graph, class maps, test vector files); then: header, models (tensors, size, routing),
    class map, pipeline, metrics (accuracy, per-class precision/recall/F1, confusion) and
    cost. With --json, the same as one JSON document.
    """
    from kpdev.host.packs.pack import read_pack

    pack = read_pack(pack_path)
    if json_:
        emit(pack.summary())
        return
    m = pack.manifest
    out.print(_header(pack))
    if pack.models:
        out.print(_models_table(pack))
        out.print(_tensors_table(pack))
        out.print(_classes_table(pack))
    if m.get("pipeline"):
        out.print(_pipeline_table(m["pipeline"]))
    else:
        out.print("pipeline: none (the models take their input as it is)")
    if m.get("metrics"):
        for table in _metrics_tables(m["metrics"]):
            out.print(table)
    else:
        out.print(
            "metrics: none (a learner's accuracy: kpdev learn, kpdev eval)"
            if pack.learning
            else "metrics: none (built without a dataset)"
        )
    if m.get("cost"):
        out.print(_cost_table(m["cost"]))
