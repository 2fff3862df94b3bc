"""The sim2real package's structure (issue 12.2): no import circles, the server's parts layered, runtime only."""

import ast
import os

from dofbot_rl.sim2real import bundle

PACKAGE = os.path.dirname(bundle.__file__)
#: Innermost first: a module may import only modules listed before it (lazily or not).
LAYERS = ["protocol", "cmdline", "arms", "safety", "policy_mode", "npz_policy", "onboard", "tcp_server", "server",
          "client", "link", "bundle", "__init__"]


def _sim2real_imports(name):
    """Names of the sibling modules ``name`` imports anywhere (top level or inside functions)."""
    tree = ast.parse(open(os.path.join(PACKAGE, name + ".py")).read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level == 1:
                out.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("dofbot_rl.sim2real."):
                out.add(node.module.split(".")[2])
    return out


def test_every_module_is_placed_in_the_layers():
    modules = {n[:-3] for n in os.listdir(PACKAGE) if n.endswith(".py")}
    assert modules == set(LAYERS)


def test_imports_point_inwards_only():
    for i, name in enumerate(LAYERS):
        outward = _sim2real_imports(name) - set(LAYERS[:i])
        assert not outward, "%s imports %s, which is not below it" % (name, sorted(outward))


def test_no_test_or_benchmark_code_in_the_runtime_package():
    for name in LAYERS:
        text = open(os.path.join(PACKAGE, name + ".py")).read()
        for word in ("fuzz_server", "GoalEpisodes", "measure_hold_latency"):
            assert word not in text, (name, word)
