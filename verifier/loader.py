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
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

__all__ = ["EngineLoadError", "load_engine", "target_of", "DEFAULT_TARGET"]

DEFAULT_TARGET = "engine:Value"


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
    # The user's file may import its neighbours.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # noqa: BLE001 - report any failure of the user's code
        del sys.modules[module_name]
        if isinstance(error, KeyboardInterrupt):
            raise
        raise EngineLoadError(f"importing {path.name} failed: {type(error).__name__}: {error}{_where(error)}") from None
    return module


def load_engine(target: str = DEFAULT_TARGET) -> type:
    """Import and return the engine class named by ``target``.

    Raises:
        EngineLoadError: missing file or module, missing attribute, not a class, or
            an exception while importing the user's code.
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
    engine = getattr(module, name)
    if not inspect.isclass(engine):
        raise EngineLoadError(f"engine target {target!r}: {name!r} is a {type(engine).__name__}, expected a class")
    return engine


def target_of(engine: type) -> str | None:
    """A target string that loads ``engine`` again in another process, if any."""
    module = sys.modules.get(engine.__module__)
    qualname = engine.__qualname__
    if module is None or "<locals>" in qualname or "." in qualname:
        return None
    if engine.__module__.startswith("_crossgrad_engine_") and getattr(module, "__file__", None):
        return f"{module.__file__}:{qualname}"
    if engine.__module__ == "__main__":
        return None
    return f"{engine.__module__}:{qualname}"
