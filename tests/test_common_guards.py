"""Nothing lost, round two (issue 24), the general pieces in vislearn.common that every family gets:
depth-limited JSON (`jsonio`), checked config settings and `base:` chains (`validate`), printable text
from files (`text`), and the entry guards of `cli` (encoding-safe printing, a closed stdout, Ctrl-C while
importing). Real processes where a signal, a pipe or an encoding is the point."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vislearn.common.errors import UserError
from cli_helpers import default_sigint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def py(code: str, env: dict | None = None, close_stdout: bool = False) -> subprocess.CompletedProcess:
    if not close_stdout:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env or ENV,
                              cwd=ROOT, timeout=120)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env or ENV, cwd=ROOT, text=True)
    proc.stdout.close()  # the reader has gone before anything is written: `... | head` at its limit
    err = proc.stderr.read()
    proc.wait(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


# ----------------------------------------------------------------------------------- 1. deep JSON

def test_read_json_refuses_nesting_deeper_than_the_limit(tmp_path):
    from vislearn.common.jsonio import MAX_DEPTH, read_json

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000)  # a RecursionError inside json before
    with pytest.raises(UserError) as e:
        read_json(deep)
    assert str(e.value) == f"{deep}: nested deeper than {MAX_DEPTH} levels (not a file of this kind, or damaged)"
    ok = tmp_path / "ok.json"
    ok.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert read_json(ok) is not None
    ok.write_text("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(UserError, match="nested deeper"):
        read_json(ok)
    with pytest.raises(UserError, match="nested deeper than 3 levels"):
        read_json(ok, max_depth=3)


def test_a_deeply_nested_output_manifest_reads_as_a_damaged_one(tmp_path):
    """The one JSON read outside jsonio (common.outputs sits below it): a damaged manifest is no manifest."""
    from vislearn.common.outputs import MANIFEST, read_manifest

    (tmp_path / MANIFEST).write_text("[" * 100000)
    assert read_manifest(tmp_path) == {}


def test_nesting_depth_counts_no_bracket_inside_a_string():
    from vislearn.common.jsonio import loads_json, nesting_depth

    def depth(o):
        if isinstance(o, dict):
            o = list(o.values())
        return 1 + max(map(depth, o), default=0) if isinstance(o, list) else 0

    cases = [1, "[[[", [], {"a": "]]]}"}, ['\\"[[', "\\\\", ["\\"]], {"[": [{"{": "}"}], "b": ["\"["]},
             [[[["x"]]], "[", '"'], "é [😀]"]
    for o in cases:
        for text in (json.dumps(o), json.dumps(o, ensure_ascii=False), json.dumps([o] * 2000)):
            want = depth(json.loads(text))
            assert nesting_depth(text) == want and nesting_depth(text.encode()) == want, text[:80]
            assert nesting_depth(text.encode("utf-16")) == want
    assert loads_json(b'{"a": [1, "[[[["]}', "x") == {"a": [1, "[[[["]}
    with pytest.raises(UserError, match=r"^line 3: not valid JSON"):
        loads_json("[1,", "line 3")


# ----------------------------------------------------------------------------- 2-4. checked settings

@dataclass
class Toy:
    name: str = ""
    epochs: int = field(default=3, metadata={})
    rate: float = 0.1
    steps: list[int] = field(default_factory=lambda: [2])
    flag: bool = False
    args: dict = field(default_factory=dict)


def toy_class():
    from vislearn.common.validate import setting

    @dataclass
    class Run:
        name: str = ""
        epochs: int = setting(3, min=1)
        rate: float = setting(0.1, above=0)
        share: float = setting(0.1, min=0, below=1)
        steps: list[int] = setting(factory=lambda: [2], min=0)
        size: list[int] = setting(factory=list, min=1, length=(0, 2))
        mode: str = setting("a", choices=("a", "b"), hints={"old": " ('old' is now called 'b')"})
        flag: bool = False
        args: dict = field(default_factory=dict)

    return Run


@pytest.mark.parametrize("key,value,message", [
    ("epochs", "0", "epochs=0: must be at least 1"),
    ("epochs", "2.5", "epochs=2.5: must be a whole number"),
    ("rate", "0", "rate=0.0: must be a finite number above 0"),
    ("rate", "nan", "rate=nan: must be a finite number above 0"),
    ("share", "1", "share=1.0: must be a finite number at least 0 and below 1"),
    ("steps", "[abc]", "steps=['abc']: must be a list of whole numbers"),
    ("steps", "[-1]", "steps=[-1]: each item must be at least 0"),
    ("size", "[0,0]", "size=[0, 0]: each item must be at least 1"),
    ("size", "[5]", "size=[5]: must be a list of 0 or 2 items"),
    ("mode", "old", "mode='old': must be one of a, b ('old' is now called 'b')"),
    ("flag", "maybe", "flag='maybe': must be true or false"),
    ("name", "a\0b", "name='a\\x00b': must not hold a NUL byte"),
    ("args", {"p": "x\0"}, "args={'p': 'x\\x00'}: must not hold a NUL byte"),
    ("args", "[1]", "args=[1]: must be a mapping (key: value)"),
])
def test_a_setting_is_checked_as_it_is_set_and_the_error_names_key_and_value(key, value, message):
    from vislearn.common.validate import COMMAND_LINE, apply

    cls = toy_class()
    with pytest.raises(UserError) as e:
        apply(cls(), {key: value}, COMMAND_LINE)
    assert str(e.value) == message
    with pytest.raises(UserError) as e:  # from a file: the file is named first
        apply(cls(), {key: value}, "conf/run.yaml")
    assert str(e.value) == f"conf/run.yaml: {message}"


def test_validate_checks_every_field_by_its_type_without_any_metadata():
    from vislearn.common.validate import apply, validate

    validate(Toy())
    for key, bad in (("name", 3), ("epochs", True), ("rate", float("inf")), ("steps", [1.5]), ("flag", 1),
                     ("args", {1: 2})):
        with pytest.raises(UserError, match=f"^config: {key}="):
            validate(Toy(**{key: bad}))
    cfg = apply(Toy(), {"epochs": "4", "rate": "1e-3", "steps": "5", "flag": "true", "args": None}, "command line")
    assert (cfg.epochs, cfg.rate, cfg.steps, cfg.flag, cfg.args) == (4, 0.001, [5], True, {})
    with pytest.raises(UserError, match=r"^x.yaml: unknown config key 'epoch'; valid keys: name, epochs"):
        apply(Toy(), {"epoch": 1}, "x.yaml")
    with pytest.raises(UserError, match="nested too deeply"):
        apply(Toy(), {"steps": "[" * 5000}, "command line")


def test_a_base_chain_that_loops_is_one_line_naming_the_chain(tmp_path):
    from vislearn.common.validate import config_chain

    (tmp_path / "a.yaml").write_text("base: b.yaml\nepochs: 1\n")
    (tmp_path / "b.yaml").write_text("base: ./a.yaml\nepochs: 2\n")
    with pytest.raises(UserError) as e:
        config_chain(tmp_path / "a.yaml")
    assert str(e.value) == (f"{tmp_path / 'b.yaml'}: base: the chain of configs loops: {tmp_path / 'a.yaml'} -> "
                            f"{tmp_path / 'b.yaml'} -> {tmp_path / './a.yaml'}")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(UserError, match=r"self.yaml: base: the chain of configs loops \(a config cannot be its own "
                                        r"base\): .*self.yaml -> .*self.yaml$"):
        config_chain(tmp_path / "self.yaml")
    (tmp_path / "nul.yaml").write_text('base: "x\\0y"\n')
    with pytest.raises(UserError, match=r"nul.yaml: base='x\\x00y': must not hold a NUL byte$"):
        config_chain(tmp_path / "nul.yaml")
    (tmp_path / "c.yaml").write_text("base: b2.yaml\nepochs: 1\n")
    (tmp_path / "b2.yaml").write_text("epochs: 2\nlr: 3\n")
    assert config_chain(tmp_path / "c.yaml") == [(tmp_path / "b2.yaml", {"epochs": 2, "lr": 3}),
                                                 (tmp_path / "c.yaml", {"epochs": 1})]


# --------------------------------------------------------------------------------- 10. printable text

def test_printable_escapes_control_characters_and_keeps_every_script():
    from vislearn.common.text import printable

    assert printable("Putting 😀 on café, 放") == "Putting 😀 on café, 放"
    assert printable("\x1b[31mred\x1b[0m\x1b]0;title\x07") == "\\x1b[31mred\\x1b[0m\\x1b]0;title\\x07"
    assert printable("a\nb\rc\td\x9b\u202eevil\u2028") == "a\\nb\\rc\\td\\x9b\\u202eevil\\u2028"
    assert printable(12) == "12"


def test_run_main_prints_messages_from_files_without_terminal_escapes():
    r = py("import sys\nfrom vislearn.common.cli import run_main\nfrom vislearn.common.errors import UserError\n"
           "def bad(): raise UserError('labels.json: class \\x1b[2J\\x1b[31mX is unknown')\n"
           "sys.exit(run_main(bad))")
    assert r.returncode == 2 and r.stderr == "error: labels.json: class \\x1b[2J\\x1b[31mX is unknown\n"


# ------------------------------------------------------------------------- 7. an encoding that lacks a character

def test_printing_never_fails_on_the_terminal_encoding():
    env = {**ENV, "PYTHONIOENCODING": "ascii"}
    r = py("import sys\nfrom vislearn.common.cli import run_main\n"
           "sys.exit(run_main(lambda: print('class \\U0001F600 smile, café')))", env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == "class \\U0001f600 smile, caf\\xe9\n"


# ---------------------------------------------------------------------------------- 8. stdout's reader gone

def test_a_closed_stdout_ends_quietly_with_141():
    many = "import sys\nfrom vislearn.common.cli import run_main\n" \
           "sys.exit(run_main(lambda: [print('row', i) for i in range({n})] and 0))"
    for n in (3, 100000):  # still in the buffer at the end (flushed by run_main), or a write that fails mid-way
        r = py(many.format(n=n), close_stdout=True)
        assert (r.returncode, r.stderr) == (141, ""), r.stderr
    # a broken pipe that is not stdout's (a helper process died) is still one line
    r = py("import sys\nfrom vislearn.common.cli import run_main\n"
           "def work(): raise BrokenPipeError(32, 'Broken pipe')\nsys.exit(run_main(work))")
    assert (r.returncode, r.stderr) == (2, "error: Broken pipe\n")
    r = py("import sys\nfrom vislearn.__main__ import main\nsys.exit(main(['--help']))", close_stdout=True)
    assert (r.returncode, r.stderr) == (141, "")


# --------------------------------------------------------------------------- 9. Ctrl-C while modules import

@pytest.mark.parametrize("entry", [["-m", "vislearn", "video", "train", "--help"],
                                   ["-m", "vislearn.video", "evaluate", "--help"]], ids=["vislearn", "dispatch"])
def test_ctrl_c_while_a_command_imports_is_interrupted_and_130(entry):
    seen = []
    for delay in (0.15, 0.3, 0.6, 1.0):  # python has started; torch and the command's modules are importing
        proc = subprocess.Popen([sys.executable, *entry], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV, cwd=ROOT, preexec_fn=default_sigint)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0 and "usage:" in out:
            continue  # finished before the signal
        assert (proc.returncode, err) == (130, "interrupted\n"), err[-2000:]
        seen.append(delay)
    assert seen, "every run finished before the signal"
