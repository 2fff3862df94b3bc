"""Contract test: the Kit layer uses only Isaac Sim 6.2 names that exist, with keywords they take.

Isaac Sim cannot start here, but its Python sources ship in PyPI wheels. This test
downloads ``isaacsim-core`` and ``isaacsim-example`` 6.2.0.0 (``pip download --no-deps``,
Python 3.12 manylinux wheels) into ``~/.cache/dofbot-rl/isaacsim-wheels`` once
(``DOFBOT_RL_WHEEL_CACHE`` overrides it), reads them as zip files and checks with ``ast``
that what ``dofbot_rl/app/`` uses from ``isaacsim.*`` exists:

* every ``from isaacsim.X import Y`` / ``import isaacsim.X``: module and name;
* the classes and functions ``dofbot_rl.app.compat`` binds for the ``isaacsim`` family
  (read off its ``_import_family``) and every keyword argument the app passes to them;
* the methods and attributes the app uses on the objects they make (views, World,
  physics context, scene, cloner, examples browser) and their keyword arguments;
* the ``isaacsim.*`` extensions named in ``extension.toml`` and in ``compat``.

It skips with the reason when the wheels are not cached and PyPI cannot be reached.
The ``omni.isaac`` family (2023.1-4.2) has no wheels on PyPI; it is not covered here.
"""

import ast
import os
import re
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

import pytest

VERSION = "6.2.0.0"
WHEELS = ("isaacsim-core", "isaacsim-example")
CACHE = Path(os.environ.get("DOFBOT_RL_WHEEL_CACHE", "~/.cache/dofbot-rl/isaacsim-wheels")).expanduser()
APP = Path(__file__).resolve().parents[1] / "exts" / "dofbot.rl_examples" / "dofbot_rl" / "app"
TOML = APP.parents[1] / "config" / "extension.toml"

#: What the app's variables hold, per module: ``(file, receiver source) -> isaacsim class``.
#: The test fails when a receiver listed here no longer occurs (keeps the table honest).
RECEIVERS = {
    ("compat.py", "world"): "isaacsim.core.api.World",
    ("isaac_physics.py", "world"): "isaacsim.core.api.World",
    ("isaac_physics.py", "self.world"): "isaacsim.core.api.World",
    ("isaac_physics.py", "api.World"): "isaacsim.core.api.World",
    ("isaac_physics.py", "physics"): "isaacsim.core.api.PhysicsContext",
    ("isaac_physics.py", "scene"): "isaacsim.core.api.scenes.Scene",
    ("isaac_physics.py", "robots"): "isaacsim.core.prims.Articulation",
    ("isaac_physics.py", "self._robots"): "isaacsim.core.prims.Articulation",
    ("isaac_physics.py", "self._ee"): "isaacsim.core.prims.RigidPrim",
    ("commands.py", "cloner"): "isaacsim.core.cloner.GridCloner",
    ("extension.py", "browser"): "isaacsim.examples.browser.extension.ExampleBrowserExtension",
}
#: Classes the app instantiates through a variable: ``(file, callee source) -> isaacsim class``.
CONSTRUCTORS = {}
#: Methods taking ``**kwargs`` that hand them on: checked against the final callee.
FORWARDS = {
    ("isaacsim.examples.browser.extension.ExampleBrowserExtension", "register_example"):
        "isaacsim.examples.browser.model.Example.__init__",
}


# ----------------------------------------------------------------------------------
# The wheels
# ----------------------------------------------------------------------------------
def _wheel_files():
    return {name: sorted(CACHE.glob(f"{name.replace('-', '_')}-{VERSION}-cp312-*manylinux*x86_64.whl")) for name in WHEELS}


@pytest.fixture(scope="module")
def wheels():
    """Paths of the cached wheels (downloaded on first use)."""
    missing = [name for name, files in _wheel_files().items() if not files]
    if missing:
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--platform", "manylinux_2_35_x86_64", "-d", str(CACHE)] + [f"{n}=={VERSION}" for n in missing]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"downloading {missing} from PyPI timed out; cache them in {CACHE}")
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            pytest.skip(f"isaacsim {VERSION} wheels {missing} not in {CACHE} and PyPI unreachable: {last}")
    return [files[-1] for files in _wheel_files().values()]


class Sources:
    """Python modules of the wheels: ``isaacsim/exts*/<ext>/<module path>.py`` -> module name."""

    def __init__(self, wheel_paths):
        self.files = {}
        self.extensions = set()
        for wheel in wheel_paths:
            with zipfile.ZipFile(wheel) as zf:
                for info in zf.infolist():
                    parts = info.filename.split("/")
                    if len(parts) > 3 and parts[0] == "isaacsim" and parts[1] in ("exts", "extsDeprecated"):
                        self.extensions.add(parts[2])
                        if parts[-1].endswith(".py") and "tests" not in parts[3:-1]:
                            module = ".".join(parts[3:])[:-3]
                            if module.endswith(".__init__"):
                                module = module[: -len(".__init__")]
                                self.files.setdefault(module + ".__init__", info.filename)
                            self.files[module] = (wheel, info.filename)
        self._trees = {}

    def tree(self, module):
        """The parsed module, or None."""
        entry = self.files.get(module)
        if not isinstance(entry, tuple):
            return None
        if module not in self._trees:
            with zipfile.ZipFile(entry[0]) as zf:
                self._trees[module] = ast.parse(zf.read(entry[1]).decode("utf-8"))
        return self._trees[module]

    def is_package(self, module):
        return module + ".__init__" in self.files

    def resolve(self, module, name, depth=0):
        """``(kind, node, module)`` for ``module.name`` (class, function, value or module), following
        re-exports and star imports; None when it does not exist."""
        if depth > 10:
            return None
        if self.tree(f"{module}.{name}") is not None:
            return "module", self.tree(f"{module}.{name}"), f"{module}.{name}"
        tree = self.tree(module)
        if tree is None:
            return None
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return "class", node, module
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return "function", node, module
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return "value", node, module
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                source = self._absolute(module, node)
                for alias in node.names:
                    if alias.name == "*":
                        found = self.resolve(source, name, depth + 1)
                        if found:
                            return found
                    elif (alias.asname or alias.name) == name:
                        return self.resolve(source, alias.name, depth + 1)
        return None

    def _absolute(self, module, node):
        if not node.level:
            return node.module
        base = module.split(".") if self.is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def symbol(self, dotted):
        """Resolve ``a.b.C`` (or ``a.b.C.method``) to ``(kind, node, module)``."""
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            found = self.resolve(".".join(parts[:cut]), parts[cut])
            if found:
                rest = parts[cut + 1:]
                if not rest:
                    return found
                if found[0] == "class" and len(rest) == 1:
                    member = self.member(found[1], found[2], rest[0])
                    return ("function", member[0], member[1]) if member else None
                return None
        return None

    def member(self, cls, module, name, depth=0):
        """``(node, module)`` of attribute ``name`` on class ``cls`` or its bases (methods,
        properties, class attributes, ``self.name =`` in ``__init__``)."""
        if depth > 10:
            return None
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return node, module
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node, module
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                return node, module
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                for sub in ast.walk(node):
                    if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and sub.attr == name
                            and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                        return sub, module
        for base in cls.bases:
            base_name = ast.unparse(base)
            found = self.resolve(module, base_name.split(".")[-1]) if "." not in base_name else self.symbol(base_name)
            if found and found[0] == "class":
                hit = self.member(found[1], found[2], name, depth + 1)
                if hit:
                    return hit
        return None


def _params(func):
    """(parameter names, takes **kwargs) of a function node."""
    args = func.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    return names, args.kwarg is not None


@pytest.fixture(scope="module")
def sources(wheels):
    return Sources(wheels)


# ----------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _app_trees():
    return {p.name: ast.parse(p.read_text()) for p in sorted(APP.glob("*.py"))}


def _core_api_bindings():
    """CoreApi field -> ``isaacsim`` symbol, read off ``compat._import_family``'s isaacsim branch."""
    tree = _app_trees()["compat.py"]
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CoreApi")
    fields = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)]
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_import_family")
    branch = next(n for n in func.body if isinstance(n, ast.If) and "ISAACSIM" in ast.unparse(n.test))
    imported = {}
    for node in branch.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    ret = next(n for n in branch.body if isinstance(n, ast.Return))
    bindings = {}
    for field, arg in zip(fields, ret.value.args):
        if isinstance(arg, ast.Name) and arg.id in imported:
            bindings[field] = imported[arg.id]
    return bindings


def _calls_and_attributes():
    """Every ``receiver.attr`` (called with its keywords, or read) in the app: (file, receiver, attr, kwargs, line)."""
    out = []
    for name, tree in _app_trees().items():
        called = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                kwargs = [k.arg for k in node.keywords if k.arg is not None]
                out.append((name, ast.unparse(node.func.value), node.func.attr, kwargs, node.lineno))
                called.add(id(node.func))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and id(node) not in called:
                out.append((name, ast.unparse(node.value), node.attr, None, node.lineno))
    return out


# ----------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------
def test_every_isaacsim_import_exists(sources):
    checked = 0
    for name, tree in _app_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("isaacsim"):
                assert sources.tree(node.module) is not None, f"{name}:{node.lineno}: no module {node.module}"
                for alias in node.names:
                    assert sources.resolve(node.module, alias.name), f"{name}:{node.lineno}: {node.module} has no {alias.name}"
                    checked += 1
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("isaacsim"):
                        assert sources.tree(alias.name) is not None, f"{name}:{node.lineno}: no module {alias.name}"
                        checked += 1
    assert checked >= 8


def test_core_api_bindings_and_their_keywords(sources):
    bindings = _core_api_bindings()
    assert set(bindings) >= {"World", "ArticulationView", "RigidView", "GridCloner", "add_reference_to_stage",
                             "set_camera_view"}
    checked = 0
    for file, receiver, attr, kwargs, line in _calls_and_attributes():
        if receiver not in ("self", "api", "self.api") or attr not in bindings or kwargs is None:
            continue
        kind, node, module = sources.symbol(bindings[attr])
        if kind == "class":
            init = sources.member(node, module, "__init__")
            assert init, f"{bindings[attr]} has no __init__"
            node = init[0]
        names, _ = _params(node)
        for kw in kwargs:
            assert kw in names, f"{file}:{line}: {bindings[attr]} takes no keyword {kw!r} (has {sorted(names)})"
            checked += 1
    assert checked >= 11


def test_methods_and_keywords_on_isaacsim_objects(sources):
    seen = set()
    problems = []
    for file, receiver, attr, kwargs, line in _calls_and_attributes():
        target = RECEIVERS.get((file, receiver))
        if target is None:
            continue
        seen.add((file, receiver))
        found = sources.symbol(target)
        assert found and found[0] == "class", f"{target} is not a class in the wheels"
        member = sources.member(found[1], found[2], attr)
        if member is None:
            problems.append(f"{file}:{line}: {target} has no {attr!r}")
            continue
        if not kwargs:
            continue
        node = member[0]
        forward = FORWARDS.get((target, attr))
        if forward:
            node = sources.symbol(forward)[1]
        names, var_kw = _params(node)
        for kw in kwargs:
            if kw not in names and not (var_kw and not forward):
                problems.append(f"{file}:{line}: {target}.{attr} takes no keyword {kw!r} (has {sorted(names - {'self'})})")
    assert not problems, "\n".join(problems)
    assert seen == set(RECEIVERS), f"receivers no longer used by the app: {sorted(set(RECEIVERS) - seen)}"


def test_constructors_called_through_variables(sources):
    seen = set()
    for name, tree in _app_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (name, ast.unparse(node.func)) in CONSTRUCTORS:
                target = CONSTRUCTORS[(name, ast.unparse(node.func))]
                seen.add((name, ast.unparse(node.func)))
                kind, cls, module = sources.symbol(target)
                names, _ = _params(sources.member(cls, module, "__init__")[0])
                for kw in node.keywords:
                    assert kw.arg in names, f"{name}:{node.lineno}: {target}() takes no keyword {kw.arg!r}"
    assert seen == set(CONSTRUCTORS)


def test_browser_register_example_forwards_to_example(sources):
    """``register_example(**kwargs)`` ends in ``Example(**kwargs)``: the forward above is real."""
    kind, node, module = sources.symbol("isaacsim.examples.browser.model.ExampleBrowserModel")
    method = sources.member(node, module, "register_example")[0]
    assert "Example(**kwargs)" in ast.unparse(method)
    assert sources.resolve("isaacsim.examples.browser", "get_instance")


def test_isaacsim_extensions_exist(sources):
    text = TOML.read_text()
    toml_names = set(re.findall(r'^"(isaacsim\.[\w.]+)"\s*=', text, flags=re.M))
    compat = _app_trees()["compat.py"]
    family = next(n for n in compat.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "FAMILY_EXTENSIONS")
    compat_names = {c.value for c in ast.walk(family.value) if isinstance(c, ast.Constant) and str(c.value).startswith("isaacsim.")}
    assert toml_names and compat_names <= toml_names | {"isaacsim.core.version"}
    missing = sorted((toml_names | compat_names) - sources.extensions)
    assert not missing, f"extensions not in the isaacsim {VERSION} wheels: {missing}"
