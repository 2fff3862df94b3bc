"""rl_games compatibility shims: the runner import with ``torch.compile`` deferred (start-up)."""

import subprocess
import sys

import torch

from dofbot_rl.rl.rlg_compat import _deferred_compile


def test_the_runner_imports_without_torch_inductor_and_torch_compile_is_restored():
    code = ("import sys, torch; real = torch.compile\n"
            "from dofbot_rl.rl.rlg_compat import runner_class\n"
            "Runner = runner_class()\n"
            "assert Runner.__name__ == 'Runner'\n"
            "assert 'torch._inductor.compile_fx' not in sys.modules, 'Inductor imported'\n"
            "assert torch.compile is real\n"
            "assert runner_class() is Runner\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_deferred_compile_compiles_once_at_the_first_call_in_every_decorator_form():
    calls = []

    def compile_now(fn, **options):
        calls.append((fn.__name__, options))
        return lambda *a, **k: ("compiled", fn(*a, **k))

    deferred = _deferred_compile(compile_now)

    @deferred
    def double(x):
        return 2 * x

    @deferred(mode="reduce-overhead")
    def triple(x):
        return 3 * x

    class Net:
        @deferred
        def forward(self, x):
            return x + 1

    assert calls == [] and double.__name__ == "double"
    assert double(2) == ("compiled", 4) and double(3) == ("compiled", 6)
    assert triple(1) == ("compiled", 3)
    assert Net().forward(1) == ("compiled", 2)
    assert calls == [("double", {}), ("triple", {"mode": "reduce-overhead"}), ("forward", {})]
    assert torch.compile is not deferred
