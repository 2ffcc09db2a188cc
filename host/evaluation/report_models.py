"""The report's table of the models a run used on the device, and what each backend says of
its model: Akida's layers (as ``Model.summary()`` lists them) and their mapping onto a device."""

from __future__ import annotations

from typing import Any

from kpdev.host.evaluation.report_blocks import Heading, Para, Table
from kpdev.host.evaluation.report_text import byte_text, fmt_int, plain_text, section_of


def _shape(v: Any) -> str:
    if isinstance(v, list):
        return " x ".join(str(d) for d in v)
    return "-" if v is None else str(v)


def _akida_blocks(name: str, details: dict) -> list:
    """Akida's layers as ``Model.summary()`` lists them, and its mapping onto a device."""
    mapping = details.get("virtual") if isinstance(details.get("virtual"), dict) else None
    nps_of: dict[str, list] = {}
    if mapping:
        for la in mapping.get("layers") or []:
            if isinstance(la, dict):
                nps_of[str(la.get("name"))] = la.get("nps") or []
    header = ["layer", "type", "input shape", "output shape", "weights", "bits", "activation"]
    if mapping:
        header.append(f"NPs on {mapping.get('device')}")
    rows = []
    for la in details.get("layers") or []:
        if not isinstance(la, dict):
            continue
        bits = [f"in {la.get('input_bits')}"] if la.get("input_bits") is not None else []
        if la.get("weights_bits") is not None:
            bits.append(f"w {la['weights_bits']}")
        if la.get("activation_bits") is not None:
            bits.append(f"out {la['activation_bits']}")
        row = [
            str(la.get("name")),
            str(la.get("type")),
            _shape(la.get("input_shape")),
            _shape(la.get("output_shape")),
            _shape(la.get("weights_shape")),
            ", ".join(bits) or "-",
            "-" if la.get("activation") is None else str(la["activation"]),
        ]
        if mapping:
            nps = nps_of.get(str(la.get("name")))
            row.append("-" if not nps else f"{len(nps)} ({nps[0].get('type')})")
        rows.append(row)
    blocks: list = [
        Heading(4, f"{name}: Akida layers"),
        Para(
            f"{details.get('engine', 'akida')} on {details.get('device', '?')}, IP "
            f"{details.get('ip_version', '?')}, {details.get('input_bits', '?')}-bit inputs, "
            f"MACs {details.get('macs', '-')}"
        ),
    ]
    if rows:
        blocks.append(Table(header, rows))
    if mapping:
        blocks.append(Heading(4, f"{name}: mapping onto {mapping.get('device')}"))
        if mapping.get("error"):
            blocks.append(Para(f"does not map: {mapping['error']}"))
        else:
            facts = [
                ["device", f"{mapping.get('device')} ({mapping.get('description', '')})"],
                ["fits in hardware", "yes" if mapping.get("fits") else "no"],
                [
                    "NPs used",
                    f"{fmt_int(mapping.get('nps_used'))} of "
                    f"{fmt_int(mapping.get('nps_available'))}",
                ],
                ["passes", fmt_int(mapping.get("passes"))],
                ["external memory", byte_text(mapping.get("external_memory_bytes"))],
            ]
            if mapping.get("software_layers"):
                facts.append(["layers in software", ", ".join(mapping["software_layers"])])
            comps = mapping.get("components")
            if isinstance(comps, dict) and comps:
                facts.append(["components", ", ".join(f"{k} {v}" for k, v in comps.items())])
            if mapping.get("power"):
                facts.append(["power", str(mapping["power"])])
            blocks.append(Table(["", ""], facts))
            seq_rows = [
                [
                    str(sq.get("name")),
                    str(sq.get("backend")),
                    fmt_int(len(sq.get("passes") or [])),
                    fmt_int(sq.get("program_bytes")),
                ]
                for sq in mapping.get("sequences") or []
                if isinstance(sq, dict)
            ]
            if seq_rows:
                blocks.append(Table(["sequence", "backend", "passes", "program bytes"], seq_rows))
            np_rows = [
                [
                    str(la.get("name")),
                    fmt_int(len(la.get("nps") or [])),
                    ", ".join(sorted({str(n.get("type")) for n in la.get("nps") or []})) or "-",
                    fmt_int(sum(n.get("filters") or 0 for n in la.get("nps") or [])),
                    fmt_int(sum(n.get("weight_bytes") or 0 for n in la.get("nps") or [])),
                ]
                for la in mapping.get("layers") or []
                if isinstance(la, dict)
            ]
            if np_rows:
                blocks.append(
                    Table(
                        ["layer", "NPs", "NP types", "filters", "weight bytes"], np_rows, (1, 3, 4)
                    )
                )
    return blocks


def model_blocks(results: dict) -> list:
    """The models on the device, with the backend that ran each, and what each backend says."""
    models = section_of(results, "models")
    if not models:
        return []
    rows, extra = [], []
    for name, m in models.items():
        if not isinstance(m, dict):
            continue
        details = m.get("details") if isinstance(m.get("details"), dict) else {}
        rows.append([str(name), str(m.get("backend") or "-"), byte_text(m.get("size"))])
        if m.get("backend") == "akida" or "layers" in details:
            extra += _akida_blocks(str(name), details)
        elif details:
            facts = [[str(k), plain_text(v)] for k, v in details.items()]
            extra += [
                Heading(4, f"{name}: what {m.get('backend')} says"),
                Table(["", ""], facts),
            ]
    return [
        Heading(3, "Models on the device"),
        Table(["model", "backend (as the device runs it)", "stored size"], rows),
    ] + extra
