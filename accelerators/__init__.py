"""Which inference backends this agent offers, looked up by name or by model format.

Device code: runs on MicroPython and CPython alike.  Backends are found through two tables and
imported lazily by module name.  On CPython a backend is offered when its runtime's distribution
is installed, found without importing it (so HELLO answers at once); its runtime is imported
when a model first needs it, and one that then fails to load is refused with E_NO_BACKEND and
no longer offered.  On MicroPython a backend for another runtime is never imported.

Adding a backend:
1. accelerators/<name>.py: a ``base.Backend`` subclass (``name``, ``version``, ``load``) whose
   ``load`` returns a ``base.LoadedModel`` subclass (``io_spec``, ``run``, ``info``);
2. ``BACKENDS`` here: its ``BackendEntry`` (the runtime it needs, or for pure Python none but
   a version and the heap a load needs); on CPython ``RUNTIME_PACKAGES``: the package and
   distribution of its engine; ``FORMATS``: its place in each format's preference order (a new
   format: protocol/formats.py ``EXTENSIONS`` too); ``options.py``: the load options it reads;
3. the host: host/extras.py (the pip extra of its runtime) and pyproject.toml's extras; a new
   format: which board runtimes take it (host/packs/deploy.py);
4. tests/test_<name>.py (as tests/test_litert.py: offered, io spec, inference, refusals) and
   the README's backend list.
"""

import sys
from collections import namedtuple

from kpdev.protocol.compat import MICROPYTHON, RUNTIME, const, forget_modules
from kpdev.protocol.errors import KpdevError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_BAD_REQUEST = const(5)
_E_NO_BACKEND = const(17)


# One backend of the table.  ``module`` and ``classname`` implement it.  ``runtime`` is the one
# it needs ("cpython"): a backend for another runtime is never imported (on a microcontroller,
# loading its module alone could exhaust the heap); on CPython such a backend is offered when
# its runtime is installed (``RUNTIME_PACKAGES``).  ``runtime`` None marks a pure-Python backend
# that works on every runtime: ``version`` is its version, so it is offered without being
# imported (probing costs a small board no RAM), and ``heap`` the free heap (bytes) it needs to
# load a model: on MicroPython it is not even imported without that room.
BackendEntry = namedtuple("BackendEntry", ("module", "classname", "runtime", "version", "heap"))

# Backend name -> BackendEntry.
BACKENDS = {
    "tflite_micro": BackendEntry(
        module="kpdev.accelerators.tflite_micro",
        classname="TFLiteMicroBackend",
        runtime="cpython",
        version=None,
        heap=None,
    ),
    "litert": BackendEntry(
        module="kpdev.accelerators.litert",
        classname="LiteRTBackend",
        runtime="cpython",
        version=None,
        heap=None,
    ),
    "iree": BackendEntry(
        module="kpdev.accelerators.iree",
        classname="IREEBackend",
        runtime="cpython",
        version=None,
        heap=None,
    ),
    "akida": BackendEntry(
        module="kpdev.accelerators.akida",
        classname="AkidaBackend",
        runtime="cpython",
        version=None,
        heap=None,
    ),
    "tflite_int8": BackendEntry(
        module="kpdev.accelerators.tflite_int8",
        classname="TFLiteInt8Backend",
        runtime=None,
        version="1.0",
        # Importing the backend with every kernel from flash (ROMFS) takes 22 KB of a 32-bit
        # board's heap (measured on the emulated Cortex-M3); objects are twice as large on a
        # 64-bit port.
        heap=45056 if sys.maxsize > 0x7FFFFFFF else 24576,
    ),
}

# Model format -> backend names, most preferred first.
FORMATS = {
    "tflite": ("tflite_micro", "tflite_int8", "litert"),
    "vmfb": ("iree",),
    "fbz": ("akida",),
}

_versions = None  # name -> version of the backends that work here, once probed
_instances = {}  # name -> Backend
_reasons = {}  # name -> why a known backend is not offered
_short = []  # backends whose code did not fit in the heap when probed
_E_MODEL_LOAD = const(23)


def _import(module_name):
    # MicroPython has no importlib: __import__ returns the top package, sys.modules the leaf.
    top = __import__(module_name)
    module = sys.modules.get(module_name)
    if module is None:
        module = top
        for part in module_name.split(".")[1:]:
            module = getattr(module, part)
    return module


def _probe():
    global _versions
    versions = {}
    before = set(sys.modules) if MICROPYTHON else None
    for name in BACKENDS:
        entry = BACKENDS[name]
        if entry.version is not None:
            versions[name] = entry.version
            continue
        if entry.runtime and entry.runtime != RUNTIME:
            _reasons[name] = "it needs %s" % entry.runtime
            continue
        if not MICROPYTHON and name in RUNTIME_PACKAGES:
            version = _installed_version(name)
            if version is not None:
                versions[name] = version
            continue
        try:
            backend = getattr(_import(entry.module), entry.classname)()
            version = backend.version()
        except MemoryError:
            _short.append(name)
            continue
        except Exception as e:  # ImportError and any failure of the constructor alike
            _reasons[name] = "%s: %s" % (type(e).__name__, e)
            continue
        _instances[name] = backend
        versions[name] = version
    _versions = versions
    if before is not None:
        # A microcontroller keeps no backend code in RAM just for having probed it: the
        # modules are imported again when a model loads (see _instance).
        release(before)


if not MICROPYTHON:  # a board keeps no table or code it never uses
    # Backend name -> (module its runtime imports as, distribution that installs it): the
    # backend is offered when that is installed, found without importing it, so an agent
    # answers HELLO at once; the runtime is imported when a model first needs it.
    RUNTIME_PACKAGES = {
        "tflite_micro": ("tflite_micro", "tflite-micro"),
        "litert": ("ai_edge_litert", "ai-edge-litert"),
        "iree": ("iree.runtime", "iree-base-runtime"),
        "akida": ("akida", "akida"),
    }

    def _installed_version(name):
        # The version of the distribution that installs a backend's runtime, or None (with the
        # reason noted) when it is not installed.
        import importlib.metadata
        import importlib.util

        package, distribution = RUNTIME_PACKAGES[name]
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            _reasons[name] = "ImportError: No module named %r" % package
            return None
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


def release(keep=None):
    """On MicroPython, forget backend instances and the backend modules imported since
    ``keep`` (a set of module names; default: every kpdev.accelerators submodule), so the
    collector frees their code.  The agent calls it when no model is loaded."""
    if not MICROPYTHON:
        return
    _instances.clear()
    forget_modules(
        [
            m
            for m in sys.modules
            if m.startswith("kpdev.accelerators.")
            and m != "kpdev.accelerators.base"
            and (keep is None or m not in keep)
        ]
    )


def _instance(name):
    backend = _instances.get(name)
    if backend is None:
        entry = BACKENDS[name]
        if entry.heap and MICROPYTHON:
            import gc

            gc.collect()
            free = gc.mem_free()
            if free < entry.heap:
                raise KpdevError(
                    "not enough memory to load a model with %s: it needs about %d KB of free "
                    "heap, this board has %d KB" % (name, entry.heap // 1024, free // 1024),
                    _E_MODEL_LOAD,
                )
        try:
            backend = getattr(_import(entry.module), entry.classname)()
        except (KpdevError, MemoryError):
            raise
        except Exception as e:  # an installed runtime that does not import or start here
            _reasons[name] = "%s: %s" % (type(e).__name__, e)
            if _versions is not None:
                _versions.pop(name, None)
            raise KpdevError(
                "backend %s does not load on %s: %s: %s" % (name, RUNTIME, type(e).__name__, e),
                _E_NO_BACKEND,
            )
        _instances[name] = backend
    return backend


def available():
    """Dict of backend name -> version for every backend that imports and constructs here."""
    if _versions is None:
        _probe()
    return dict(_versions)


def _offers():
    names = sorted(available())
    if not names:
        return "none"
    parts = []
    for name in names:
        formats = [fmt for fmt in FORMATS if name in FORMATS[fmt]]
        parts.append("%s (%s)" % (name, ", ".join(formats)))
    return ", ".join(parts)


def get(name):
    """The backend called ``name``; KpdevError (E_NO_BACKEND) if this agent does not offer it."""
    if name in available():
        return _instance(name)
    why = ""
    if name in _reasons:
        why = "it does not load: %s; " % _reasons[name]
    elif name not in BACKENDS:
        why = "unknown backend; "
    raise KpdevError(
        "no backend %r on %s (%sthis agent offers: %s)" % (name, RUNTIME, why, _offers()),
        _E_NO_BACKEND,
    )


def for_format(fmt, prefer=None, load=True):
    """The first available backend that loads ``fmt``, or ``prefer`` when it is one of them;
    with ``load`` false only its name (nothing is imported).

    Raises KpdevError (E_NO_BACKEND) naming the runtime and what this agent does offer.
    """
    names = FORMATS.get(fmt)
    offered = available()
    if names:
        if prefer is not None and prefer in names and prefer in offered:
            return _instance(prefer) if load else prefer
        for name in names:
            if name in offered:
                return _instance(name) if load else name
    for name in names or ():
        if name in _short:
            raise KpdevError(
                "not enough memory to load the %s backend on this board" % name, _E_MODEL_LOAD
            )
    from kpdev.protocol.formats import EXTENSIONS

    known = names is not None or fmt in EXTENSIONS.values()
    why = "" if known else "unknown model format; "
    raise KpdevError(
        "no backend for %s on %s (%sthis agent offers: %s)" % (fmt, RUNTIME, why, _offers()),
        _E_NO_BACKEND,
    )


def format_of(filename):
    """The model format of a file name, from its extension (".tflite" -> "tflite")."""
    from kpdev.protocol.formats import EXTENSIONS, format_of

    fmt = format_of(filename)
    if fmt is None:
        raise KpdevError(
            "unknown model format of %r (known extensions: %s)"
            % (filename, ", ".join(sorted(EXTENSIONS))),
            _E_BAD_REQUEST,
        )
    return fmt
