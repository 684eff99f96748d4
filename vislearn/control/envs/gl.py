"""Which OpenGL MuJoCo renders offscreen with: `MUJOCO_GL`, chosen before `mujoco` is imported.

MuJoCo reads `MUJOCO_GL` once, at import. A user's own setting is kept; otherwise EGL (a GPU or Mesa's
software EGL) is taken where its library loads, then OSMesa (apt `libosmesa6`). Where neither loads, the
first render says so in one line naming the apt packages, instead of a traceback from deep in PyOpenGL."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

from vislearn.common.errors import UserError

BACKENDS = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}
MISSING = ("no offscreen OpenGL for MuJoCo: install EGL (apt install libegl1) or OSMesa (apt install libosmesa6), "
           "or set MUJOCO_GL to a backend that works here")


def _loads(library: str) -> bool:
    name = ctypes.util.find_library(library)
    if name is None:
        return False
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def choose_gl() -> str | None:
    """Set `MUJOCO_GL` if the user did not, and return it (None: no backend loads here)."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend, (library, _) in BACKENDS.items():
        if _loads(library):
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            else:
                os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
            return backend
    return None


def import_mujoco():
    """`import mujoco`, or the one-line error: MuJoCo loads its OpenGL backend when it is imported, so a backend named
    in `MUJOCO_GL` that is missing here (OSMesa without libosmesa6, a name MuJoCo does not know) fails there."""
    choose_gl()
    try:
        import mujoco  # noqa: PLC0415
    except Exception as e:  # noqa: BLE001 - PyOpenGL / MuJoCo raise many kinds; the user needs one line
        raise UserError(f"{MISSING} (MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    return mujoco


def _load_llvm_users_first() -> None:
    """Load triton's library (LLVM inside; torch imports it with torch._dynamo, e.g. at the first optimizer) before
    Mesa's software OpenGL (LLVM too): loaded after a Mesa context exists, it crashes the process (SIGSEGV, measured
    with torch 2.14 / triton here). Loaded first, both work."""
    import importlib.util

    try:
        if importlib.util.find_spec("triton") is not None:
            import triton._C.libtriton  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - a broken triton is torch's business, not the renderer's
        pass


_rendered_in: set[int] = set()  # processes (pids) that made an OpenGL context


def rendered_here() -> bool:
    """Whether this process has made an OpenGL context: a child it forks then hangs making its own (Mesa's EGL
    keeps threads and state that do not survive a fork), so vector envs start their workers otherwise."""
    return os.getpid() in _rendered_in


def renderer(model, height: int, width: int):
    """A `mujoco.Renderer`, or a one-line error naming what to install when no backend can render."""
    mujoco = import_mujoco()
    _load_llvm_users_first()
    if choose_gl() is None:
        raise UserError(MISSING)
    _rendered_in.add(os.getpid())
    try:
        return mujoco.Renderer(model, height, width)
    except Exception as e:  # noqa: BLE001 - PyOpenGL / EGL raise many kinds; the user needs one line
        raise UserError(f"{MISSING} (MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
