"""read_model_file: a model file's bytes must be of the format its extension names."""

import zipfile

import pytest
from support.paths import DATA

from kpdev.host.errors import UsageError
from kpdev.host.packs.deploy import read_model_file
from kpdev.protocol.formats import EXTENSIONS

MODELS = sorted(p for p in DATA.iterdir() if p.suffix in EXTENSIONS)
WHAT = {".tflite": "a TFLite model", ".vmfb": "an IREE module", ".fbz": "an Akida model"}


def test_every_model_of_the_test_data_is_read_with_its_format():
    assert {p.suffix for p in MODELS} == set(EXTENSIONS)
    for p in MODELS:
        assert read_model_file(p) == (p.read_bytes(), EXTENSIONS[p.suffix])


def test_a_bare_iree_flatbuffer_is_a_vmfb_too(tmp_path):
    # IREE's compiler wraps the module's FlatBuffer in a zip; the runtime takes it bare too.
    with zipfile.ZipFile(DATA / "mlp_f32.vmfb") as z:
        bare = z.read("module.fb")  # the first member; the others are embedded executables
    (tmp_path / "bare.vmfb").write_bytes(bare)
    assert read_model_file(tmp_path / "bare.vmfb") == (bare, "vmfb")


@pytest.mark.parametrize("ext", sorted(EXTENSIONS))
def test_text_or_another_format_under_an_extension_is_refused(tmp_path, ext):
    texts = [b"hello, I am a text file\n" * 40, b"# notes\n" + b"x" * 300, b"", b"TFL3"]
    others = [p.read_bytes() for p in MODELS if p.suffix != ext]
    for i, data in enumerate(texts + others):
        path = tmp_path / f"fake{i}{ext}"
        path.write_bytes(data)
        with pytest.raises(UsageError) as e:
            read_model_file(path)
        assert str(path) in str(e.value) and f"not {WHAT[ext]}" in str(e.value)
