"""Import MuJoCo so that only rendering touches OpenGL.

``import mujoco`` reads ``MUJOCO_GL`` and, when it names a backend (``osmesa``, ``egl``,
``glx``), loads that OpenGL stack at import time. Where the library is missing this dies
inside PyOpenGL (``AttributeError: 'NoneType' object has no attribute 'glGetError'`` for
OSMesa without ``libosmesa6``), before any of this project's code can say what is wrong.
Only ``dofbot-rl play render=True`` needs OpenGL, so every other command imports MuJoCo
with ``MUJOCO_GL=disable`` (the variable is restored right after, for child processes),
and the render path turns an OpenGL failure into one :class:`RenderError` line.

Load order with OpenGL: Mesa's OSMesa and EGL (the CPU renderers) link the system's
``libLLVM``; PyPI's CUDA builds of torch bring ``triton``, whose ``libtriton.so`` carries its
own LLVM. Loading ``libtriton.so`` after ``libLLVM`` is in the process runs triton's static
LLVM initialisers against Mesa's LLVM globals and crashes with a segmentation fault (issue 18
item 20: ``play render=True`` died with exit 139 as soon as rl_games' runner imported
``torch._dynamo`` -> ``triton``; a bare ``mujoco.Renderer`` worked because nothing loaded
triton afterwards). The other order is fine, so :func:`import_mujoco` loads triton, when it
is installed, before the OpenGL stack.
"""

import os
import sys
from dofbot_rl.errors import DofbotRlError


class RenderError(DofbotRlError, RuntimeError):
    """No OpenGL context could be made for offscreen rendering (the message says how to get one)."""


GL_HELP = ("set MUJOCO_GL=egl (NVIDIA GPU; Debian: apt install libegl1) or MUJOCO_GL=osmesa "
           "(CPU; Debian: apt install libosmesa6) before running, or drop render=True")


def import_mujoco(gl: bool = False):
    """Import and return ``mujoco``.

    Args:
        gl: ``True`` where OpenGL is needed (rendering): the backend ``MUJOCO_GL`` names is
            loaded and a failure raises :class:`RenderError`. ``False``: MuJoCo is imported with
            OpenGL disabled, so a broken or absent GL stack cannot stop a command that does not
            render. Has no effect once ``mujoco`` is imported (the first import decides).

    Raises:
        RenderError: ``gl=True`` and the OpenGL backend cannot be loaded.
    """
    if "mujoco" in sys.modules:
        return sys.modules["mujoco"]
    if gl:
        load_triton_first()
        try:
            import mujoco
        except Exception as exc:  # PyOpenGL fails with AttributeError, OSError, ImportError or RuntimeError
            backend = os.environ.get("MUJOCO_GL") or "default"
            raise RenderError(f"offscreen rendering is not available (MUJOCO_GL={backend}: "
                              f"{type(exc).__name__}: {exc}): {GL_HELP}") from None
        return mujoco
    saved = os.environ.get("MUJOCO_GL")
    os.environ["MUJOCO_GL"] = "disable"
    try:
        import mujoco
    finally:
        if saved is None:
            del os.environ["MUJOCO_GL"]
        else:
            os.environ["MUJOCO_GL"] = saved
    return mujoco


def load_triton_first() -> None:
    """Import ``triton`` (if installed) so that its LLVM is loaded before Mesa's ``libLLVM``.

    A no-op where triton is absent (the CPU torch wheels) or already imported. See the module
    docstring for the crash this avoids. Costs about a second, on the render path only.
    """
    import importlib.util

    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    import triton  # noqa: F401  (loads triton/_C/libtriton.so)
