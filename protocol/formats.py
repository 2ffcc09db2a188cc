"""Model formats: the names MODEL_BEGIN's ``format`` field carries, and the file extensions."""

EXTENSIONS = {
    ".tflite": "tflite",
    ".vmfb": "vmfb",
    ".fbz": "fbz",
}


def format_of(filename):
    """The model format of a file name, or None when the extension is not one kpdev knows."""
    dot = filename.rfind(".")
    if dot < 0:
        return None
    return EXTENSIONS.get(filename[dot:].lower())
