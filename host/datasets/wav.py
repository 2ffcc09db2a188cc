"""WAV recordings: a folder of class folders of ``.wav`` files, or one file."""

from __future__ import annotations

import os
import wave

import numpy as np

from kpdev.host.datasets.base import Dataset, Options, Signal, class_list, stem
from kpdev.host.errors import UsageError
from kpdev.host.features.transforms import windows_of


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    """(int16 samples [T, channels], frame rate) of an 8- or 16-bit PCM WAV file."""
    try:
        with wave.open(path, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise UsageError(f"{path}: not a PCM WAV file kpdev can read ({e})")
    if width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    elif width == 1:
        # 8-bit WAV is unsigned with 128 as zero; scale it to the int16 range.
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) * 256
    else:
        raise UsageError(
            f"{path}: {8 * width}-bit samples; kpdev reads 8- and 16-bit PCM, convert it to 16-bit"
        )
    return samples.reshape(-1, channels), rate


def load_wav_dir(path: str, opts: Options) -> Dataset:
    files = []
    for folder in sorted(os.listdir(path)):
        full = os.path.join(path, folder)
        if folder.startswith("."):
            continue
        if os.path.isfile(full) and folder.lower().endswith(".wav"):
            raise UsageError(
                f"{full}: a WAV file outside a class folder; put WAV files in one folder per class"
            )
        if os.path.isdir(full):
            files += [
                (os.path.join(full, name), folder)
                for name in sorted(os.listdir(full))
                if name.lower().endswith(".wav") and not name.startswith(".")
            ]
    if not files:
        raise UsageError(f"{path}: no WAV files in its class folders")
    classes = class_list({folder for _, folder in files}, opts.classes, path)
    index = {c: i for i, c in enumerate(classes)}
    recordings = []
    for file, folder in files:
        samples, rate = _read_wav(file)
        if recordings and (samples.shape[1], rate) != recordings[0][1:3]:
            first, channels, first_rate = recordings[0][3], recordings[0][1], recordings[0][2]
            raise UsageError(
                f"{file}: {samples.shape[1]} channel(s) at {rate} Hz, but {first} has "
                f"{channels} at {first_rate} Hz; convert the files to one format"
            )
        recordings.append((samples, samples.shape[1], rate, os.path.basename(file), folder))
    channels, rate = recordings[0][1], recordings[0][2]
    if opts.window is None:
        lengths = {len(r[0]) for r in recordings}
        if len(lengths) > 1:
            short = min(recordings, key=lambda r: len(r[0]))
            long = max(recordings, key=lambda r: len(r[0]))
            raise UsageError(
                f"{path}: WAV files differ in length ({short[3]} {len(short[0])} samples, "
                f"{long[3]} {len(long[0])}); give a window (--window SIZE,STRIDE)"
            )
        x = np.stack([r[0] for r in recordings])
        y = [index[r[4]] for r in recordings]
        group = np.arange(len(recordings))
        how = "one sample per file"
    else:
        size, stride = opts.window
        windows = [windows_of(r[0], size, stride) for r in recordings]
        x = np.concatenate(windows)
        if not len(x):
            raise UsageError(f"{path}: no WAV file is {size} samples long, the window size")
        y = np.concatenate(
            [np.full(len(w), index[r[4]]) for w, r in zip(windows, recordings, strict=True)]
        )
        group = np.concatenate([np.full(len(w), i) for i, w in enumerate(windows)])
        how = f"windows of {size} every {stride}"
    return Dataset(
        name=stem(path),
        source=f"{len(recordings)} WAV file(s) in {path}, {rate} Hz, {how}",
        x=x,
        y=y,
        classes=classes,
        axes=["ch%d" % i for i in range(channels)],
        group=group,
        rate_hz=float(rate),
    )


def load_wav_file(path: str, opts: Options) -> Dataset:
    raise UsageError(
        f"{path}: a lone WAV file has no class; give the folder holding one folder per class"
    )


def signal_wav(path: str, label_column: str) -> Signal:
    samples, rate = _read_wav(path)
    axes = ["ch%d" % i for i in range(samples.shape[1])]
    return Signal(samples.astype(np.float32), None, None, axes, float(rate))
