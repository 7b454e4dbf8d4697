"""Finding the engine class a user names: ``package.module:Class`` or
``path/to/file.py:Class``.

Every failure is an :class:`EngineLoadError` with one line that names the bad target
and what was expected; nothing of the user's file is evaluated beyond importing it.

Example:
    >>> load_engine("engine:Value").__name__
    'Value'
    >>> load_engine("engine:Nope")
    Traceback (most recent call last):
    ...
    verifier.loader.EngineLoadError: engine target 'engine:Nope': module 'engine' has no attribute 'Nope'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from verifier.adapters import ADAPTERS, framework_of

__all__ = ["EngineLoadError", "load_engine", "load_object", "target_of", "absolute_target", "DEFAULT_TARGET", "HOME", "OWN_PACKAGES",
           "own_packages_first", "own_package", "child_path"]

DEFAULT_TARGET = "engine:Value"
_ADAPTER_NAMES = {target: name for name, (target, _, _) in ADAPTERS.items()}

# The folder that holds crossgrad's own top-level packages (the checkout, or
# site-packages), and their names: a user's engine.py, reports/ or properties.py in
# the current folder must never stand in for them.
HOME = str(Path(__file__).resolve().parent.parent)
OWN_PACKAGES = ("engine", "reports", "properties", "verifier")
_LENT: set[str] = set()  # names a user's file may take from its own folder while it is imported


class _OwnPackages(importlib.abc.MetaPathFinder):
    """Finds crossgrad's own top-level packages in :data:`HOME`, whatever sys.path
    (or the current folder) says. First on ``sys.meta_path`` of crossgrad's own
    processes only (the CLI and the sandbox): a notebook keeps Python's rules."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if path is not None or name not in OWN_PACKAGES or name in _LENT:
            return None
        return importlib.machinery.PathFinder.find_spec(name, [HOME])


def own_packages_first() -> None:
    """Make this process import ``engine``, ``reports``, ``properties`` and
    ``verifier`` from crossgrad's own folder, and move the current folder (which
    ``python -m`` and ``python -c`` put first) to the end of sys.path, where the
    user's modules are still found by name but shadow nothing.

    For crossgrad's own processes: ``python -m verifier`` and the sandbox.
    """
    if not any(isinstance(finder, _OwnPackages) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OwnPackages())
    here = os.getcwd()
    current = [p for p in sys.path if p in ("", ".") or _same(p, here)]
    if current:
        sys.path[:] = [p for p in sys.path if p not in current] + [here]


def own_package(name: str) -> Any:
    """crossgrad's own top-level package ``name`` (``"reports"``, ``"engine"``),
    imported by Python's rules (a notebook's or a pytest run's folder comes first:
    crossgrad does not take the name from the user there); an ImportError in one
    line when the user's own package of that name stands in for it.

    Example:
        >>> own_package("reports").__name__
        'reports'
    """
    module = importlib.import_module(name)
    where = getattr(module, "__file__", None) or ""
    try:
        inside = os.path.commonpath([os.path.realpath(where), os.path.realpath(HOME)]) == os.path.realpath(HOME)
    except ValueError:
        inside = False
    if not inside:
        raise ImportError(
            f"crossgrad's {name!r} package is hidden by {where or 'a module'} of the same name (found first on "
            f"sys.path, e.g. in the current folder): rename yours, or run from another folder"
        )
    return module


def _same(a: str, b: str) -> bool:
    try:
        return os.path.abspath(a) == b
    except (TypeError, ValueError):
        return False


def child_path() -> list[str]:
    """The import path of a sandbox started from this process: this process's
    folders (absolute), the current folder last."""
    here = os.getcwd()
    paths: list[str] = []
    for p in sys.path:
        if not isinstance(p, str):
            continue
        full = os.path.abspath(p) if p else here
        if full != here and full not in paths:
            paths.append(full)
    return paths + [here]


class EngineLoadError(ValueError):
    """The engine target could not be loaded (a one-line message)."""


def _split(target: str) -> tuple[str, str]:
    if not isinstance(target, str) or ":" not in target:
        raise EngineLoadError(
            f"engine target {target!r} is not of the form package.module:Class or path/to/file.py:Class"
        )
    location, _, name = target.rpartition(":")
    if not location or not name.isidentifier():
        raise EngineLoadError(
            f"engine target {target!r} is not of the form package.module:Class or path/to/file.py:Class"
        )
    return location, name


def _where(error: BaseException) -> str:
    """``file.py line N`` of the innermost frame, to point at the user's bug."""
    if isinstance(error, SyntaxError):
        return f" ({Path(error.filename or '?').name} line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        return f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})"
    return ""


def _import_file(path: Path) -> object:
    if not path.is_file():
        raise EngineLoadError(f"engine file {str(path)!r} does not exist")
    # A stable, unique module name: two files called value.py must not collide.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"_crossgrad_engine_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise EngineLoadError(f"engine file {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _neighbours(path.resolve().parent):
            spec.loader.exec_module(module)
    except BaseException as error:  # noqa: BLE001 - report any failure of the user's code
        del sys.modules[module_name]
        if isinstance(error, KeyboardInterrupt):
            raise
        raise EngineLoadError(f"importing {path.name} failed: {type(error).__name__}: {error}{_where(error)}") from None
    return module


class _neighbours:
    """While the user's file is imported, its folder comes first and its own
    modules win, even one called ``engine`` or ``reports``; afterwards crossgrad
    gets its own packages back (the user's module keeps what it imported) and the
    folder stays at the end of sys.path, for imports made later by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.lent = {n for n in OWN_PACKAGES[:-1]
                     if (folder / f"{n}.py").is_file() or (folder / n / "__init__.py").is_file()}

    def _taken(self) -> dict[str, Any]:
        return {k: v for k, v in sys.modules.items() if k.partition(".")[0] in self.lent}

    def __enter__(self) -> None:
        self.saved = self._taken()
        for name in self.saved:
            del sys.modules[name]
        _LENT.update(self.lent)
        sys.path.insert(0, self.folder)

    def __exit__(self, *exc: Any) -> None:
        _LENT.difference_update(self.lent)
        if sys.path and sys.path[0] == self.folder:
            del sys.path[0]
        if self.folder not in sys.path:
            sys.path.append(self.folder)
        for name in self._taken():
            del sys.modules[name]
        sys.modules.update(self.saved)


def load_engine(target: str = DEFAULT_TARGET) -> type:
    """Import and return the engine class named by ``target``: ``module:Class``,
    ``file.py:Class``, or the name of a framework adapter (``"torch"``, ``"jax"``,
    ``"torch:float32"``: see :data:`verifier.adapters.ADAPTERS`).

    Raises:
        EngineLoadError: missing file or module, missing attribute, not a class, an
            exception while importing the user's code, or an adapter's framework
            not installed.
    """
    if isinstance(target, str) and target in ADAPTERS:
        return _load_adapter(target)
    engine = load_object(target)
    if not inspect.isclass(engine):
        raise EngineLoadError(f"engine target {target!r}: {target.rpartition(':')[2]!r} is a {type(engine).__name__}, expected a class")
    return engine


def load_object(target: str) -> Any:
    """Import and return what ``module:name`` or ``file.py:name`` names (a class, a
    function: a custom gradient's implementation, see :mod:`verifier.custom`).

    Raises:
        EngineLoadError: as :func:`load_engine`, but any object is accepted.
    """
    location, name = _split(target)
    if location.endswith(".py") or "/" in location or "\\" in location:
        module = _import_file(Path(location))
    else:
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as error:
            if error.name and location.startswith(error.name):
                raise EngineLoadError(f"engine target {target!r}: no module named {error.name!r}") from None
            raise EngineLoadError(f"importing {location} failed: {type(error).__name__}: {error}{_where(error)}") from None
        except BaseException as error:  # noqa: BLE001
            if isinstance(error, KeyboardInterrupt):
                raise
            raise EngineLoadError(f"importing {location} failed: {type(error).__name__}: {error}{_where(error)}") from None
    if not hasattr(module, name):
        classes = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and getattr(v, "__module__", None) == module.__name__)
        hint = f" (classes there: {', '.join(classes)})" if classes else ""
        raise EngineLoadError(f"engine target {target!r}: module {location!r} has no attribute {name!r}{hint}")
    return getattr(module, name)


def _load_adapter(name: str) -> type:
    """The class behind an adapter name (``"jax"``, ``"torch:float32"``)."""
    target, _, extra = ADAPTERS[name]
    framework = framework_of(name)
    try:
        found = importlib.util.find_spec(framework) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise EngineLoadError(f"engine {name!r} needs {framework}: pip install 'crossgrad[{extra}]'")
    return load_engine(target)


def target_of(engine: type) -> str | None:
    """A target string that loads ``engine`` again in another process, if any."""
    module = sys.modules.get(engine.__module__)
    qualname = engine.__qualname__
    if module is None or "<locals>" in qualname or "." in qualname:
        return None
    if getattr(module, qualname, None) is not engine:  # redefined, or made by a factory
        return None
    if engine.__module__ == "__main__":
        return None
    file = getattr(module, "__file__", None)
    if file and not _importable(engine.__module__):
        return f"{file}:{qualname}"  # loaded from a file under a name of its own
    target = f"{engine.__module__}:{qualname}"
    return _ADAPTER_NAMES.get(target, target)  # an adapter by its name ("torch:float32")


def _importable(name: str) -> bool:
    """Whether another process can import module ``name`` by name (not only this
    one, where a file may have been loaded under an invented name)."""
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        return importlib.machinery.PathFinder.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def absolute_target(target: str) -> str:
    """A file target with an absolute path (``my_value.py:Value`` ->
    ``/home/me/my_value.py:Value``), so that the report's engine can be replayed from
    any folder; anything else (a module, a missing file: its error names it as
    typed) as is."""
    if target in ADAPTERS:
        return target
    location, sep, name = target.rpartition(":")
    if sep and (location.endswith(".py") or "/" in location or "\\" in location) and Path(location).is_file():
        return f"{os.path.abspath(location)}:{name}"
    return target
