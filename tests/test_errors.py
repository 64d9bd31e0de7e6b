"""One error base for the package, no SystemExit from library code, exit statuses decided in one place."""

import ast
import importlib
from pathlib import Path

import pytest

import unifilter_hf
from unifilter_hf.cli import main, run_command
from unifilter_hf.errors import UniFilterError
from unifilter_hf.publishing.hub import PushError, check_can_push

PACKAGE = Path(unifilter_hf.__file__).parent


def _exception_classes():
    """Every exception class defined in the package's source, found by reading the files."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module_name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        classes = [n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)]
        if not classes or "metrics" in path.parts:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:  # an optional dependency (ray) that is not installed here
            if "ray" in str(err):
                continue
            raise
        found += [getattr(module, c) for c in classes
                  if isinstance(getattr(module, c, None), type) and issubclass(getattr(module, c), BaseException)]
    return found


def test_every_package_exception_is_a_unifilter_error():
    classes = _exception_classes()
    assert len(classes) >= 13  # SampleError, SchemaError, SourceError, PushError, ModelNotFoundError, ...
    assert [c.__qualname__ for c in classes if not issubclass(c, UniFilterError)] == []
    assert [c.__qualname__ for c in classes if issubclass(c, SystemExit)] == []


def test_builtin_bases_kept_for_callers():
    from unifilter_hf.row_layouts import SchemaError
    from unifilter_hf.sample import SampleError
    from unifilter_hf.scoring import ModelNotFoundError
    from unifilter_hf.sources import SourceError

    assert all(issubclass(c, ValueError) for c in (SampleError, SchemaError, SourceError))
    assert issubclass(ModelNotFoundError, OSError)


def test_push_error_is_raised_not_exited(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PushError) as info:
        check_can_push("me/x")
    assert not isinstance(info.value, SystemExit) and isinstance(info.value, UniFilterError)


def _raise(err):
    def call():
        raise err
    return call


def test_exit_statuses_and_one_line_messages(capsys):
    assert run_command("push", _raise(PushError("cannot push to me/x:\n  offline"))) == 2
    assert capsys.readouterr().err == "unifilter-hf push: error: cannot push to me/x: offline\n"
    assert run_command("curate", _raise(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "unifilter-hf curate: interrupted\n"
    assert run_command("score", _raise(RuntimeError("boom"))) == 1
    assert "unexpected error" in capsys.readouterr().err
    assert run_command("score", lambda: 0) == 0
    with pytest.raises(PushError):
        run_command("push", _raise(PushError("x")), debug=True)


def test_push_subcommand_exits_two_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(tmp_path), "me/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unifilter-hf push: error: ")
