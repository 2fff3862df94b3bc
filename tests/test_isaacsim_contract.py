"""Contract test: every Isaac Sim and Kit name the Kit layer uses exists, with the keywords it
passes, in every version the README claims; plus AST checks for classes of Kit bugs.

Isaac Sim cannot run here. ``tools/kit_signatures.py`` read the real sources once and wrote
``tests/data/kit_signatures.json`` (names and signatures only; checked in, so no network):

* ``isaacsim.*`` (Isaac Sim 4.5+ family): the IsaacSim repository at v5.0.0, v5.1.0, v6.0.0,
  v6.0.1 and the ``isaacsim-core`` / ``isaacsim-example`` 6.2.0.0 wheels;
* ``omni.isaac.*`` (2023.1 - 4.2 family): an Isaac Sim 4.1 ``exts`` snapshot (no 2023.1 source
  is public; 4.0 - 4.2 and 2023.1 are checked against 4.1's names, see docs/versions.md);
* Kit Python APIs (carb.input, carb.settings, omni.kit.app, omni.kit.menu.utils,
  omni.kit.actions.core, omni.usd, omni.kit.commands, omni.kit.undo, omni.kit.viewport.utility,
  omni.kit.ui_test, omni.kit.test): the .pyi stubs of Isaac Sim 5.x (Kit 107) and the
  ``omniverse-kit`` 110.4 wheel's stubs; omni.ui and omni.timeline from that wheel's C++ headers;
* the extension names of each version (its extensions, deprecated extensions, and every
  name its extension.toml files and apps/*.kit depend on).

Calls under ``if self.family == ISAACSIM`` count for that family only (``else``: the other);
a keyword passed under ``if "<keyword>" in ...`` (a feature check at run time) counts only for
versions whose callee has it, and such an ``if`` must have an ``else``.
"""

import ast
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "exts" / "dofbot.rl_examples" / "dofbot_rl" / "app"
TOML = APP.parents[1] / "config" / "extension.toml"
DATA = json.loads((Path(__file__).parent / "data" / "kit_signatures.json").read_text())

ISAACSIM, OMNI_ISAAC = "isaacsim", "omni.isaac"
VERSIONS = {ISAACSIM: ["5.0", "5.1", "6.0", "6.0.1", "6.2"], OMNI_ISAAC: ["4.1"]}
KIT_VERSIONS = ["107", "110.4"]

#: The objects the app holds, by role, per family.
ROLES = {
    "World": {ISAACSIM: "isaacsim.core.api.World", OMNI_ISAAC: "omni.isaac.core.World"},
    "PhysicsContext": {ISAACSIM: "isaacsim.core.api.physics_context.PhysicsContext",
                       OMNI_ISAAC: "omni.isaac.core.physics_context.PhysicsContext"},
    "Scene": {ISAACSIM: "isaacsim.core.api.scenes.Scene", OMNI_ISAAC: "omni.isaac.core.scenes.Scene"},
    "Articulation": {ISAACSIM: "isaacsim.core.prims.Articulation", OMNI_ISAAC: "omni.isaac.core.articulations.ArticulationView"},
    "RigidView": {ISAACSIM: "isaacsim.core.prims.RigidPrim", OMNI_ISAAC: "omni.isaac.core.prims.RigidPrimView"},
    "GridCloner": {ISAACSIM: "isaacsim.core.cloner.GridCloner", OMNI_ISAAC: "omni.isaac.cloner.GridCloner"},
    "Browser": {ISAACSIM: "isaacsim.examples.browser.extension.ExampleBrowserExtension"},
}
#: ``(file, receiver source) -> role``. Fails when a receiver no longer occurs (keeps it honest).
RECEIVERS = {
    ("compat.py", "world"): "World",
    ("isaac_physics.py", "world"): "World",
    ("isaac_physics.py", "self.world"): "World",
    ("isaac_physics.py", "api.World"): "World",
    ("isaac_physics.py", "physics"): "PhysicsContext",
    ("isaac_physics.py", "scene"): "Scene",
    ("isaac_physics.py", "robots"): "Articulation",
    ("isaac_physics.py", "self._robots"): "Articulation",
    ("isaac_physics.py", "self._ee"): "RigidView",
    ("commands.py", "cloner"): "GridCloner",
    ("extension.py", "browser"): "Browser",
}
#: Methods taking ``**kwargs`` that hand them on: checked against the final callee.
FORWARDS = {"register_example": "isaacsim.examples.browser.model.Example.__init__"}
#: Kit objects the app holds: ``(file, receiver) -> (table, class)``.
KIT_RECEIVERS = {
    ("selection.py", "self._input"): "carb.input.IInput",
    ("extension.py", "registry"): "omni.kit.actions.core.IActionRegistry",
    ("carb_store.py", "self._settings"): "carb.settings.ISettings",
}
#: Deprecated Kit calls and keywords the app must not use (the replacement in the message).
DEPRECATED_CALLS = {
    "subscribe_to_keyboard_events": "subscribe_to_input_events(..., order=SUBSCRIPTION_ORDER_FIRST) (Kit 100.1)",
    "unsubscribe_to_keyboard_events": "unsubscribe_to_input_events (Kit 100.1)",
}
DEPRECATED_KEYWORDS = {"onclick_fn": "onclick_action=(extension, action) (omni.kit.menu.utils)"}


# ----------------------------------------------------------------------------------
# The app's source
# ----------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _trees():
    return {p.name: ast.parse(p.read_text()) for p in sorted(APP.glob("*.py"))}


def _guards(tree):
    """``id(node) -> (family or None, guarded keywords)`` for every node under ``if`` guards."""
    out = {}

    def visit(node, family, keywords):
        out[id(node)] = (family, keywords)
        if isinstance(node, ast.If):
            test = ast.unparse(node.test)
            m = re.fullmatch(r"self\.family == (ISAACSIM|OMNI_ISAAC)", test)
            k = re.fullmatch(r"'(\w+)' in .+", test)
            if m:
                mine = ISAACSIM if m.group(1) == "ISAACSIM" else OMNI_ISAAC
                other = OMNI_ISAAC if mine == ISAACSIM else ISAACSIM
                visit(node.test, family, keywords)
                for child in node.body:
                    visit(child, mine, keywords)
                for child in node.orelse:
                    visit(child, other, keywords)
                return
            if k:
                assert node.orelse, f"line {node.lineno}: a feature check `{test}` needs an else for apps without it"
                visit(node.test, family, keywords)
                for child in node.body:
                    visit(child, family, keywords | {k.group(1)})
                for child in node.orelse:
                    visit(child, family, keywords)
                return
        for child in ast.iter_child_nodes(node):
            visit(child, family, keywords)

    visit(tree, None, frozenset())
    return out


def _usages():
    """Every ``receiver.attr`` in the app: (file, receiver, attr, kwargs or None, line, family, guarded kws)."""
    out = []
    for name, tree in _trees().items():
        guards = _guards(tree)
        called = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                kwargs = [k.arg for k in node.keywords if k.arg is not None]
                family, guarded = guards.get(id(node), (None, frozenset()))
                out.append((name, ast.unparse(node.func.value), node.func.attr, kwargs, node.lineno, family, guarded))
                called.add(id(node.func))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and id(node) not in called:
                family, guarded = guards.get(id(node), (None, frozenset()))
                out.append((name, ast.unparse(node.value), node.attr, None, node.lineno, family, guarded))
    return out


def _core_api_bindings():
    """``{family: {CoreApi field: dotted symbol}}`` read off ``compat._import_family``."""
    tree = _trees()["compat.py"]
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CoreApi")
    fields = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)]
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_import_family")
    branch = next(n for n in func.body if isinstance(n, ast.If) and "ISAACSIM" in ast.unparse(n.test))
    out = {}
    for family, body in ((ISAACSIM, branch.body), (OMNI_ISAAC, func.body[func.body.index(branch) + 1:])):
        imported = {}
        for node in body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        ret = next(n for n in body if isinstance(n, ast.Return))
        out[family] = {f: imported[a.id] for f, a in zip(fields, ret.value.args) if isinstance(a, ast.Name) and a.id in imported}
    return out


def _symbols(family, version):
    return DATA["families"][family][version]["symbols"]


def _params(entry):
    """(parameter names, takes **kwargs) of a function entry or a class's ``init``."""
    if entry.get("kind") == "class":
        entry = entry.get("init", {"params": [], "varkw": True})
    return set(entry.get("params", [])), entry.get("varkw", False)


def _families(family):
    return [family] if family else [ISAACSIM, OMNI_ISAAC]


# ----------------------------------------------------------------------------------
# Isaac Sim core API, per family and version
# ----------------------------------------------------------------------------------
def test_tables_cover_every_claimed_version():
    assert set(DATA["families"][ISAACSIM]) == set(VERSIONS[ISAACSIM])
    assert set(DATA["families"][OMNI_ISAAC]) == set(VERSIONS[OMNI_ISAAC])
    assert set(DATA["kit"]) == set(KIT_VERSIONS) and DATA["omni_ui"] and DATA["omni_timeline"]
    for family, versions in DATA["families"].items():
        for version, table in versions.items():
            assert not table["missing"], f"{family} {version}: roots not found in the sources: {table['missing']}"


@pytest.mark.parametrize("family", [ISAACSIM, OMNI_ISAAC])
def test_every_bound_name_exists(family):
    bindings = _core_api_bindings()[family]
    assert set(bindings) >= {"World", "ArticulationView", "RigidView", "GridCloner", "add_reference_to_stage",
                             "set_camera_view"}
    imports = [f"{n.module}.{a.name}" for t in _trees().values() for n in ast.walk(t)
               if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(family + ".") for a in n.names]
    for version in VERSIONS[family]:
        symbols = _symbols(family, version)
        for dotted in set(bindings.values()) | set(imports):
            assert dotted in symbols, f"Isaac Sim {version}: {dotted} does not exist"


@pytest.mark.parametrize("family", [ISAACSIM, OMNI_ISAAC])
def test_core_api_keywords_per_version(family):
    bindings = _core_api_bindings()[family]
    checked = 0
    for file, receiver, attr, kwargs, line, fam, guarded in _usages():
        if receiver not in ("self", "api", "self.api") or attr not in bindings or kwargs is None or fam not in (None, family):
            continue
        for version in VERSIONS[family]:
            names, varkw = _params(_symbols(family, version)[bindings[attr]])
            for kw in kwargs:
                if kw in guarded and kw not in names:
                    continue
                assert varkw or kw in names, f"{file}:{line}: Isaac Sim {version}: {bindings[attr]} takes no {kw!r}"
                checked += 1
    assert checked >= 11


@pytest.mark.parametrize("family", [ISAACSIM, OMNI_ISAAC])
def test_methods_and_keywords_on_core_objects(family):
    seen, problems = set(), []
    for file, receiver, attr, kwargs, line, fam, guarded in _usages():
        role = RECEIVERS.get((file, receiver))
        if role is None:
            continue
        seen.add((file, receiver))
        cls = ROLES[role].get(family)
        if cls is None or fam not in (None, family):
            continue
        for version in VERSIONS[family]:
            symbols = _symbols(family, version)
            assert symbols.get(cls, {}).get("kind") == "class", f"Isaac Sim {version}: no class {cls}"
            member = symbols.get(f"{cls}.{attr}")
            if member is None:
                problems.append(f"{file}:{line}: Isaac Sim {version}: {cls} has no {attr!r}")
                continue
            if not kwargs:
                continue
            if attr in FORWARDS and symbols.get(FORWARDS[attr]):
                member = symbols[FORWARDS[attr]]
            names, varkw = _params(member)
            for kw in kwargs:
                if not varkw and kw not in names and not (kw in guarded):
                    problems.append(f"{file}:{line}: Isaac Sim {version}: {cls}.{attr} takes no keyword {kw!r}")
    assert seen == set(RECEIVERS), f"receivers no longer in the app: {set(RECEIVERS) - seen}"
    assert not problems, "\n".join(problems)


def test_world_step_keyword_is_feature_checked():
    """Issue 11 item 2: ``update_fabric`` arrived with isaacsim.core.api 4.7 (Isaac Sim 5.1)."""
    with_kw = [v for v in VERSIONS[ISAACSIM] if "update_fabric" in _symbols(ISAACSIM, v)["isaacsim.core.api.World.step"]["params"]]
    assert with_kw == ["5.1", "6.0", "6.0.1", "6.2"]
    assert "update_fabric" not in _symbols(OMNI_ISAAC, "4.1")["omni.isaac.core.World.step"]["params"]


# ----------------------------------------------------------------------------------
# Extensions
# ----------------------------------------------------------------------------------
def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI (the test extra)
        import tomli as tomllib

    return tomllib.loads(TOML.read_text())


def _exists(name, version):
    if name in DATA["extensions"][version]:
        return True
    # A Kit SDK extension no Isaac Sim 5.x extension.toml happens to name: accepted for 5.x when it is
    # an extension of another version and the 5.x runtime's stubs have its module (omni.kit.undo, a
    # module of omni.kit.commands and an extension of no version, is not)
    known = any(name in DATA["extensions"][v] for v in ("4.1", "6.0", "6.0.1"))
    return version in ("5.0", "5.1") and known and name in DATA["kit"]["107"]["packages"]


def test_every_dependency_exists_in_the_versions_it_is_declared_for():
    """Issue 11 item 1: ``omni.kit.undo`` is a module of omni.kit.commands, not an extension."""
    cfg = _toml()
    names = set(cfg["dependencies"]) | {d for t in cfg.get("test", []) for d in t.get("dependencies", [])}
    problems = []
    for name in sorted(names):
        if name.startswith("isaacsim."):
            versions = VERSIONS[ISAACSIM]
        elif name.startswith("omni.isaac."):
            versions = VERSIONS[OMNI_ISAAC]
        else:  # Kit SDK and PhysX: every version whose full extension list we have (6.2's wheels hold isaacsim.* only)
            versions = ["4.1", "5.0", "5.1", "6.0", "6.0.1"]
        problems += [f"{name}: not an extension of Isaac Sim {v}" for v in versions if not _exists(name, v)]
    assert not problems, "\n".join(problems)


def test_compat_enables_only_declared_extensions():
    text = TOML.read_text()
    declared = set(re.findall(r'^"([\w.]+)"\s*=', text, flags=re.M))
    compat = (APP / "compat.py").read_text()
    used = set(re.findall(r'"((?:isaacsim|omni\.isaac|omni\.physx)\.[\w.]+)"', compat))
    used = {u for u in used if u.count(".") >= 2 and not u.endswith(".py")}
    assert used - {"omni.physx.fabric"} <= declared, used - declared


# ----------------------------------------------------------------------------------
# Kit APIs (stubs and headers)
# ----------------------------------------------------------------------------------
def _kit_names(module, version):
    symbols = DATA["kit"][version]["symbols"]
    if module not in symbols:
        return None
    prefix = module + "."
    names = {k[len(prefix):].split(".")[0] for k in symbols if k.startswith(prefix)}
    if module == "omni.usd":  # omni.usd does `from ._usd import *` (the generated stub lost that line)
        names |= _kit_names("omni.usd._usd", version) or set()
    return names


def _kit_module_usages():
    """``(file, module, name, line)`` for every ``<kit module>.<name>`` the app reads or calls."""
    modules = sorted({m for v in KIT_VERSIONS for m, e in DATA["kit"][v]["symbols"].items() if e["kind"] == "module"},
                     key=len, reverse=True)
    out = []
    trees = dict(_trees())
    trees.update({f"tests/{p.name}": ast.parse(p.read_text()) for p in sorted((APP / "tests").glob("test_*.py"))})
    for file, tree in trees.items():
        aliases = {a.asname: a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.asname}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                source = ast.unparse(node.value)
                source = aliases.get(source, source)
                if source in modules:
                    out.append((file, source, node.attr, node.lineno))
            elif isinstance(node, ast.ImportFrom) and node.module in modules:
                out += [(file, node.module, a.name, node.lineno) for a in node.names]
    return out


def test_kit_module_names_exist():
    problems, checked = [], 0
    for file, module, name, line in _kit_module_usages():
        for version in KIT_VERSIONS:
            names = _kit_names(module, version)
            if names is None:
                continue
            checked += 1
            if name not in names:
                problems.append(f"{file}:{line}: Kit {version}: {module} has no {name!r}")
    assert not problems, "\n".join(problems)
    assert checked >= 20


def test_kit_methods_and_keywords():
    problems, seen = [], set()
    for file, receiver, attr, kwargs, line, _, _ in _usages():
        cls = KIT_RECEIVERS.get((file, receiver))
        if cls is None:
            continue
        seen.add((file, receiver))
        for version in KIT_VERSIONS:
            symbols = DATA["kit"][version]["symbols"]
            if cls not in symbols:
                continue
            member = symbols.get(f"{cls}.{attr}")
            if member is None:
                problems.append(f"{file}:{line}: Kit {version}: {cls} has no {attr!r}")
                continue
            names, varkw = _params(member)
            problems += [f"{file}:{line}: Kit {version}: {cls}.{attr} takes no {kw!r}" for kw in kwargs or []
                         if not varkw and kw not in names]
    assert seen == set(KIT_RECEIVERS), set(KIT_RECEIVERS) - seen
    assert not problems, "\n".join(problems)


def test_menu_item_description_keywords():
    tree = _trees()["extension.py"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "MenuItemDescription"]
    assert calls
    for version in ("107",):
        names, _ = _params(DATA["kit"][version]["symbols"]["omni.kit.menu.utils.MenuItemDescription"])
        for call in calls:
            for kw in call.keywords:
                assert kw.arg in names, f"Kit {version}: MenuItemDescription takes no {kw.arg!r}"


def test_timeline_and_omni_ui_names_exist():
    timeline = DATA["omni_timeline"]["110.4"]["ITimeline"]["names"]
    for file, receiver, attr, _, line, _, _ in _usages():
        if (file, receiver) in (("compat.py", "tl"), ("compat.py", "timeline()"), ("sim_loop.py", "timeline")):
            assert attr in timeline, f"{file}:{line}: omni.timeline ITimeline has no {attr!r}"
    ui = DATA["omni_ui"]["110.4"]
    tree = _trees()["window.py"]
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and ast.unparse(n.value) == "ui"}
    assert used and used <= set(ui), f"omni.ui has no {sorted(used - set(ui))}"

    def names(cls):
        entry = ui.get(cls, {"bases": [], "names": []})
        return set(entry["names"]).union(*[names(b) for b in entry["bases"]]) if entry["bases"] else set(entry["names"])

    window_calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "ui.Window"]
    # constructor keywords: properties, or the C++ constructor's parameters (the header spells
    # the binding's ``dockPreference`` parameter ``dockPrefence``)
    ctor = names("Window") | {n[5:] for n in names("Window") if n.startswith("init:")}
    ctor |= {"dockPreference"} if "dockPrefence" in ctor else set()
    for call in window_calls:
        for kw in call.keywords:
            assert kw.arg in ctor, f"ui.Window takes no {kw.arg!r}"
    for file, receiver, attr, _, line, _, _ in _usages():
        if file == "window.py" and receiver == "self._window":
            assert attr in names("Window"), f"window.py:{line}: ui.Window has no {attr!r}"
        if file == "window.py" and receiver == "self._window.frame":
            assert attr in names("Frame"), f"window.py:{line}: ui.Frame has no {attr!r}"
    assert "call_clicked_fn" in names("Button")  # what the Kit tests click with


# ----------------------------------------------------------------------------------
# Static checks for classes of Kit bugs
# ----------------------------------------------------------------------------------
def test_remove_object_keeps_the_prims():
    """Issue 11 item 3: ``Scene.remove_object`` deletes the prims unless ``registry_only=True``."""
    for file, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "remove_object":
                kw = {k.arg: k.value for k in node.keywords}
                ok = "registry_only" in kw and isinstance(kw["registry_only"], ast.Constant) and kw["registry_only"].value is True
                assert ok, f"{file}:{node.lineno}: remove_object(...) without registry_only=True deletes the prims"


def _is_setting_change(node):
    """``app_steps_physics(False)`` or ``settings.set_bool("/app/...", False)`` (not a restore)."""
    if not isinstance(node, ast.Call):
        return False
    name = ast.unparse(node.func)
    if name.endswith("app_steps_physics"):
        return not (isinstance(node.args[0], ast.Constant) and node.args[0].value is True)
    if name.endswith(("set_bool", "set_int", "set_float", "set_string")) and node.args:
        key = ast.unparse(node.args[0])
        return "/app/" in key or "PLAY_SIMULATIONS" in key
    return False


def _restores(node):
    return any(isinstance(n, ast.Call) and ast.unparse(n.func).endswith("app_steps_physics")
               and isinstance(n.args[0], ast.Constant) and n.args[0].value is True for n in ast.walk(node))


def test_app_settings_are_restored_on_every_path():
    """Issue 11 item 5: a changed app setting is restored on failure (the next statement is a
    ``try`` whose handlers or ``finally`` restore it) and on close/stop; only compat touches it."""
    changes = 0
    for file, tree in _trees().items():
        for node in ast.walk(tree):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if not isinstance(block, list):
                    continue
                for i, stmt in enumerate(block):
                    if not (isinstance(stmt, ast.Expr) and _is_setting_change(stmt.value)):
                        continue
                    if file == "compat.py" and "enabled" in ast.unparse(stmt):
                        continue  # the setter itself
                    changes += 1
                    nxt = block[i + 1] if i + 1 < len(block) else None
                    assert isinstance(nxt, ast.Try) and (any(_restores(h) for h in nxt.handlers) or _restores(
                        ast.Module(body=nxt.finalbody, type_ignores=[]))), \
                        f"{file}:{stmt.lineno}: app setting changed without a restore on the failure path"
        if file != "compat.py":
            raw = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "/app/player/playSimulations"]
            assert not raw, f"{file}: sets /app/player/playSimulations itself; use compat.app_steps_physics"
    assert changes >= 2
    physics = next(n for n in _trees()["isaac_physics.py"].body if isinstance(n, ast.ClassDef))
    close = next(n for n in physics.body if isinstance(n, ast.FunctionDef) and n.name == "close")
    assert _restores(close), "IsaacPhysicsBackend.close must let Kit step physics again"


def test_world_step_only_while_playing():
    """Issue 11 item 4: ``World.step`` steps nothing unless the timeline plays: guard it."""
    found = 0
    for file, tree in _trees().items():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            steps = [n for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                     and n.func.attr == "step" and ast.unparse(n.func.value).endswith("world")]
            if not steps:
                continue
            found += len(steps)
            guard = [n for n in ast.walk(func) if isinstance(n, ast.If) and "is_playing()" in ast.unparse(n.test)]
            assert guard and all(g.lineno < s.lineno for g in guard for s in steps), \
                f"{file}:{func.lineno}: {func.name} calls world.step without checking world.is_playing() first"
    assert found >= 2


def test_no_deprecated_kit_apis():
    """Issue 11 items 8 and 12: keyboard and menu APIs Kit deprecated."""
    for file, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Attribute) and node.func.attr in DEPRECATED_CALLS:
                    pytest.fail(f"{file}:{node.lineno}: {node.func.attr} is deprecated: use {DEPRECATED_CALLS[node.func.attr]}")
                for kw in node.keywords:
                    if kw.arg in DEPRECATED_KEYWORDS:
                        pytest.fail(f"{file}:{node.lineno}: {kw.arg}= is deprecated: use {DEPRECATED_KEYWORDS[kw.arg]}")


def test_keyboard_subscription_comes_first():
    calls = [n for n in ast.walk(_trees()["selection.py"]) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "subscribe_to_input_events"]
    assert calls and all(ast.unparse(k.value) == "carb.input.SUBSCRIPTION_ORDER_FIRST" for c in calls for k in c.keywords
                         if k.arg == "order") and all(any(k.arg == "order" for k in c.keywords) for c in calls)
