# The int8 inner loops on a MicroPython board, case by case, for
# tests/accelerators/test_int8_viper32.py and bench/mcu_speed.py.  Device code (no f-strings).
#
# kernels(PATH): PATH holds kernel calls (written by support.kernelcases.encode); each runs
#   with the viper loops select_loops / k_arith choose on this board and with the plain loops,
#   printing "k <index> <viper> <plain>", each "<ok>:<output hex>" (ok: 0 when pool refused).
# models(DIR): DIR/cases.txt has "<key> <runs>" lines; DIR/<key>.tflite is the model and
#   DIR/<key>.<k>.<i>.in input i of run k.  Prints "o <key> <k> <j> <output hex>" for each output
#   and "ok <key>" (or "error <key> <message>").
# which(): the loop modules chosen here and whether a viper module of the other word size loaded.
import gc
import struct
import sys

from kpdev.accelerators.int8 import arith_plain, interp, loops_plain

try:
    from binascii import hexlify
except ImportError:  # pragma: no cover
    from ubinascii import hexlify

from array import array


def _arith_viper():
    # The module k_arith picks for a viper interpreter on this word size.
    if interp.word_bits() == 32:
        from kpdev.accelerators.int8 import arith_viper32 as m
    else:
        from kpdev.accelerators.int8 import arith_viper as m
    return m


def which():
    loops = interp.select_loops("auto")
    names = [n for n in sys.modules if "_viper" in n]
    names.sort()
    print("bits", interp.word_bits(), "loops", loops.__name__, "loaded", ",".join(names))


def _args(data, pos, count):
    # Decode ``count`` arguments; returns (args, outputs, position).
    args = []
    outs = []
    for _ in range(count):
        tag = data[pos]
        pos += 1
        if tag == 105:  # 'i': int32
            args.append(struct.unpack_from("<i", data, pos)[0])
            pos += 4
        elif tag == 98:  # 'b': bytes
            n = struct.unpack_from("<I", data, pos)[0]
            args.append(bytes(data[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        elif tag == 119:  # 'w': int32 array
            n = struct.unpack_from("<I", data, pos)[0]
            a = array("i", bytes(data[pos + 4 : pos + 4 + 4 * n]))
            args.append(a)
            pos += 4 + 4 * n
        elif tag == 111:  # 'o': output bytes
            n = struct.unpack_from("<I", data, pos)[0]
            out = bytearray(n)
            args.append(out)
            outs.append(out)
            pos += 4
        elif tag == 115:  # 's': int32 scratch
            n = struct.unpack_from("<I", data, pos)[0]
            args.append(array("i", [0] * n))
            pos += 4
        else:
            raise ValueError("bad tag %d" % tag)
    return args, outs, pos


def kernels(path):
    loops = interp.select_loops("viper")
    arith = ("add", "mul", "mean")
    av = _arith_viper()
    with open(path, "rb") as f:
        data = f.read()
    count, pos = struct.unpack_from("<I", data, 0)[0], 4
    for index in range(count):
        n = data[pos]
        name = str(data[pos + 1 : pos + 1 + n], "ascii")
        nargs = data[pos + 1 + n]
        start = pos + 2 + n
        results = []
        for mod in (av if name in arith else loops, arith_plain if name in arith else loops_plain):
            args, outs, pos = _args(data, start, nargs)
            ret = getattr(mod, name)(*args)
            flag = 1 if ret is None or ret else 0
            results.append("%d:%s" % (flag, str(hexlify(outs[0]), "ascii")))
        print("k %d %s %s" % (index, results[0], results[1]))
        gc.collect()


def models(base):
    from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
    from kpdev.protocol.tensors import Tensor

    backend = TFLiteInt8Backend()
    with open(base + "/cases.txt") as f:
        lines = f.read().split("\n")
    for line in lines:
        if not line:
            continue
        key, runs = line.split()
        try:
            model = backend.load(base + "/" + key + ".tflite")
            spec = model.io_spec()
            for k in range(int(runs)):
                inputs = []
                for i in range(len(spec["inputs"])):
                    s = spec["inputs"][i]
                    with open("%s/%s.%d.%d.in" % (base, key, k, i), "rb") as f:
                        inputs.append(Tensor(s["dtype"], s["shape"], f.read()))
                outputs = model.run(inputs)
                for j in range(len(outputs)):
                    print("o %s %d %d %s" % (key, k, j, str(hexlify(outputs[j].data), "ascii")))
            print("ok " + key)
        except Exception as e:
            print("error %s %s: %s" % (key, type(e).__name__, str(e).replace("\n", " ")))
        model = None
        gc.collect()
