"""kpdev deploy / models / model activate|delete: what is refused before an upload, what a
refused model leaves on the device, and the backend the listings name."""

import json

from support.cli import cli, cli_json, kpdev, one_line_error
from support.paths import DATA, read_data

MODEL = DATA / "dense_int8.tflite"
VMFB = DATA / "mlp_f32.vmfb"  # no backend on a MicroPython board reads it


def stored(board):
    listed = cli_json("models", "--board", board)
    used = cli_json("info", "--board", board)["storage"]["used"]
    return {m["name"]: m for m in listed["models"]}, listed["active"], used


def test_a_renamed_text_file_is_refused_before_a_byte_is_sent(tmp_path):
    cli("deploy", MODEL, "--name", "dense", "--board", "sim-mcu")
    before = stored("sim-mcu")
    fake = tmp_path / "fake.tflite"
    fake.write_text("this is a text file, not a model\n" * 100)
    line = one_line_error(kpdev("deploy", fake, "--board", "sim-mcu"), 2)
    assert "fake.tflite: not a TFLite model" in line
    assert stored("sim-mcu") == before


def test_a_model_the_device_cannot_load_is_not_kept_nor_activated():
    b = ["--board", "sim-mcu"]
    cli("deploy", MODEL, "--name", "dense", *b)
    models, active, used = stored("sim-mcu")
    assert active == "dense" and "mlp_f32" not in models

    # No backend there reads the format: refused from the device's INFO, nothing is sent.
    line = one_line_error(kpdev("deploy", VMFB, *b), 3)
    assert "mlp_f32 cannot run on sim-mcu: it has no backend for .vmfb models" in line
    assert "nothing was sent" in line
    assert stored("sim-mcu") == (models, active, used)  # nothing left, not a byte of storage

    r = kpdev("deploy", VMFB, "--keep-unloadable", *b, "--json")
    assert r.returncode == 3 and "is stored on sim-mcu (--keep-unloadable)" in r.stderr
    detail = json.loads(r.stdout)["error"]["detail"]
    assert detail["stored"] is True and detail["active"] is False
    kept, still, now = stored("sim-mcu")
    assert still == "dense" and kept["mlp_f32"]["backend"] is None
    assert now == used + VMFB.stat().st_size

    # Activating it is refused by the device, and the active model stays.
    line = one_line_error(kpdev("model", "activate", "mlp_f32", *b), 3)
    assert "no backend for vmfb" in line
    assert stored("sim-mcu")[1] == "dense"

    # Several names at once: all or nothing.
    line = one_line_error(kpdev("model", "delete", "mlp_f32", "ghost", *b), 2)
    assert "no model ghost" in line and "nothing was deleted" in line
    assert set(stored("sim-mcu")[0]) == {"dense", "mlp_f32"}
    assert cli_json("model", "delete", "mlp_f32", "dense", *b) == {"deleted": ["mlp_f32", "dense"]}
    assert stored("sim-mcu")[0] == {}
    cli("deploy", MODEL, "--name", "a", *b)
    cli("deploy", MODEL, "--name", "b", *b)
    assert cli_json("model", "delete", "--all", *b) == {"deleted": ["a", "b"]}
    assert stored("sim-mcu") == ({}, None, 0)
    one_line_error(kpdev("model", "delete", *b), 2)


def test_backend_and_load_options_are_checked_before_upload():
    b = ["--board", "sim-linux"]
    before = stored("sim-linux")
    cases = [
        (["--backend", "nosuch"], "no such backend; use one of tflite_micro, litert, iree"),
        (["--backend", "iree"], "iree does not read .tflite models; use one of tflite_micro,"),
        (["-O", "foo=bar"], "tflite_micro takes no load option 'foo'; use one of arena_size"),
        (["--backend", "tflite_int8", "-O", "threads=2"], "use one of kernels, weights"),
    ]
    for args, words in cases:
        line = one_line_error(kpdev("deploy", MODEL, *args, *b), 2)
        assert words in line, line
    assert stored("sim-linux") == before

    up = cli_json("deploy", MODEL, "--name", "int8", "--backend", "tflite_int8", "-O",
                  "kernels=plain", *b)  # fmt: skip
    assert up["backend"] == "tflite_int8"
    listed = stored("sim-linux")[0]["int8"]
    assert listed["backend"] == cli_json("model", "info", "int8", *b)["backend"] == "tflite_int8"


def test_the_models_table_names_the_backend_that_runs_not_the_one_asked():
    from kpdev.host.client.session import open_session

    with open_session("sim-linux") as c:  # a raw client: the host's checks are not in the way
        c.upload("asked", read_data("dense_int8.tflite"), "tflite", {"backend": "iree"})
    listed = stored("sim-linux")[0]["asked"]
    assert (
        listed["backend"] == cli_json("model", "info", "asked", "--board", "sim-linux")["backend"]
    )
    assert listed["backend"] == "tflite_micro"
    assert "tflite_micro (asked iree)" in cli("models", "--board", "sim-linux").stdout
    cli("model", "delete", "asked", "--board", "sim-linux")


def test_a_model_that_fails_to_load_is_not_stored():
    # sim-mcu-64k has the int8 interpreter but too little heap to load a model with it.
    b = ["--board", "sim-mcu-64k"]
    before = stored("sim-mcu-64k")
    line = one_line_error(kpdev("deploy", MODEL, "--name", "dense", *b), 3)
    assert "dense cannot run on sim-mcu-64k" in line and "nothing was stored" in line
    assert "the active model is unchanged" in line
    assert stored("sim-mcu-64k") == before  # nothing left, not a byte of storage


def test_a_refused_model_leaves_the_stored_model_of_its_name_as_it_was(tmp_path):
    b = ["--board", "sim-mcu"]
    cli("deploy", MODEL, "--name", "dense", *b)
    before = stored("sim-mcu")
    assert before[1] == "dense"
    # A TFLite identifier and nothing else of a model: the host's format check passes, the
    # device's load does not.
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0\0\0\0TFL3" + bytes(range(256)) * 8)
    line = one_line_error(kpdev("deploy", junk, "--name", "dense", *b), 3)
    assert "dense cannot run on sim-mcu" in line and "nothing was stored" in line, line
    assert "the model stored as dense before is unchanged" in line
    assert "the active model is unchanged" in line
    assert stored("sim-mcu") == before  # the same bytes, meta, active model and storage used

    # Kept on purpose: stored under its name, never activated.
    out = kpdev("deploy", junk, "--name", "kept", "--keep-unloadable", "--json", *b)
    assert out.returncode == 3
    detail = json.loads(out.stdout)["error"]["detail"]
    assert detail["stored"] is True and detail["active"] is False
    models, active, _ = stored("sim-mcu")
    assert active == "dense" and models["kept"]["size"] == junk.stat().st_size
    cli("model", "delete", "kept", *b)
