"""The Kit layer stays thin and separate; the extension's metadata is complete."""

import ast
from pathlib import Path

import torch

PKG = Path(__file__).resolve().parents[1] / "exts" / "dofbot.rl_examples" / "dofbot_rl"
EXT = PKG.parent
KIT_ROOTS = {"omni", "carb", "isaacsim", "pxr"}


def _top_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0], node.lineno


def test_only_the_app_package_imports_kit():
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "app":
            continue
        allowed = {"pxr"} if rel.name == "usd_asset.py" else set()
        offenders += [f"{rel}:{line} imports {mod}" for mod, line in _top_imports(path) if mod in KIT_ROOTS - allowed]
    assert not offenders, offenders


def test_plain_modules_do_not_import_the_app():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] != "app":
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    assert not node.module.startswith("dofbot_rl.app"), f"{rel}:{node.lineno} imports {node.module}"


def test_app_modules_parse_and_kit_tests_are_not_collected():
    for path in (PKG / "app").rglob("*.py"):
        ast.parse(path.read_text())
    conftest = (PKG / "app" / "tests" / "conftest.py").read_text()
    assert 'collect_ignore_glob = ["*"]' in conftest


def test_no_print_in_library_code():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] in ("panel", "app") or rel.name in ("usd_asset.py", "isaacsim_versions.py") or rel.parts[:2] == ("rl", "threaded.py"):
            tree = ast.parse(path.read_text())
            calls = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
            assert not calls, f"{rel}: print() at lines {calls}"


def test_extension_toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI (the test extra)
        import tomli as tomllib

    cfg = tomllib.loads((EXT / "config" / "extension.toml").read_text())
    pkg = cfg["package"]
    assert pkg["title"] == "Dofbot RL Examples" and pkg["category"] and pkg["keywords"] and pkg["description"]
    for key in ("icon", "preview_image", "changelog", "readme"):
        assert (EXT / pkg[key]).is_file(), f"{key}: {pkg[key]} missing"
    assert cfg["python"]["module"] == [{"name": "dofbot_rl.app"}]
    deps = cfg["dependencies"]
    for name in ("omni.ui", "omni.usd", "omni.kit.menu.utils", "omni.kit.commands", "omni.timeline"):
        assert deps[name] == {}, name
    for name in ("isaacsim.core.api", "omni.isaac.core", "isaacsim.examples.browser"):
        assert deps[name] == {"optional": True}, name
    assert cfg["test"][0]["timeout"] > 0


def test_versions_table_is_consistent():
    from dofbot_rl.isaacsim_versions import ISAACSIM, OMNI_ISAAC, VERSIONS, family_for, support_message

    for v in VERSIONS:
        assert family_for(v.version) == v.family, v.version
        assert support_message(v.version, v.family) is None
    assert family_for("2022.2.1") is None and "not supported" in support_message("2022.2.1", OMNI_ISAAC)
    assert family_for("4.5.0-rc.3+release.1") == ISAACSIM and family_for("7.1.0") == ISAACSIM
    assert "neither" in support_message("", None)
    docs = (PKG.parents[2] / "docs" / "versions.md")
    if docs.is_file():
        text = docs.read_text()
        for v in VERSIONS:
            assert f"| {v.version} " in text, f"docs/versions.md lacks {v.version}"


def test_config_composes_while_another_extension_holds_global_hydra():
    """Issue 11 item 9: OmniIsaacGymEnvs leaves GlobalHydra initialised in the same Kit app;
    the panel's config must still compose, and OIGE's Hydra must be left in place."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dofbot_rl.config import config_dir, load_config

    theirs = initialize_config_dir(config_dir=str(config_dir()), version_base="1.3")  # what OIGE leaves behind
    try:
        held = GlobalHydra.instance().hydra
        assert held is not None
        cfg = load_config(["sim_device=cpu", "num_envs=8"])
        assert cfg.num_envs == 8
        assert GlobalHydra.instance().hydra is held
    finally:
        theirs.__exit__(None, None, None)
    assert not GlobalHydra.instance().is_initialized()


def test_window_title_and_menu_item_do_not_collide_with_omniisaacgymenvs():
    """Issue 11 item 9: OIGE registers *Isaac Examples > RL Examples* and a window "RL Examples"."""
    def constant(path, name):
        tree = ast.parse(path.read_text())
        return next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == name)

    assert constant(PKG / "app" / "window.py", "TITLE") != "RL Examples"
    assert constant(PKG / "app" / "extension.py", "MENU_ITEM") != "RL Examples"


def test_app_install_list_adds_everything_but_torch():
    """Issue 11 item 10: installing into an app's Python must keep the app's torch. The project
    and rl-games go in with --no-deps; tools/app-requirements.txt must hold the rest of both
    packages' requirements and nothing that depends on torch."""
    import re
    from importlib import metadata

    req = (PKG.parents[2] / "tools" / "app-requirements.txt").read_text()
    listed = {re.split(r"[\[<>=!~ ]", line.strip())[0].lower().replace("_", "-")
              for line in req.splitlines() if line.strip() and not line.startswith("#")}
    assert "torch" not in listed and "rl-games" not in listed and "numpy" not in listed

    def names(requirements):
        out = set()
        for r in requirements or []:
            if "extra ==" in r or 'python_version < "3.9"' in r:
                continue
            out.add(re.split(r"[\[<>=!~ ;(]", r)[0].lower().replace("_", "-"))
        return out

    needed = (names(metadata.requires("dofbot-rl")) | names(metadata.requires("rl-games"))) - {"torch", "numpy", "rl-games"}
    assert needed <= listed, f"tools/app-requirements.txt lacks {sorted(needed - listed)}"
    docs = (PKG.parents[2] / "docs" / "extension.md").read_text()
    assert "--no-deps" in docs and "tools/app-requirements.txt" in docs


def test_isaac_backend_step_never_syncs_with_the_host_on_a_gpu():
    """Issue 11 item 12: the non-finite check is deferred to the task's time-out sync
    (``check_finite``); ``step`` itself syncs only on the CPU."""
    tree = ast.parse((PKG / "app" / "isaac_physics.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "IsaacPhysicsBackend")
    step = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "step")
    cpu_only = {id(n) for b in ast.walk(step) if isinstance(b, ast.If) and "cpu" in ast.unparse(b.test)
                for s in b.body for n in ast.walk(s)}
    syncs = [ast.unparse(n) for n in ast.walk(step) if isinstance(n, ast.Call) and id(n) not in cpu_only
             and ((ast.unparse(n.func) in ("bool", "int", "float") and not all(isinstance(a, ast.Name) for a in n.args))
                  or ast.unparse(n.func) == "torch.nonzero"
                  or (isinstance(n.func, ast.Attribute) and n.func.attr in ("item", "tolist", "cpu", "numpy")))]
    assert not syncs, f"IsaacPhysicsBackend.step syncs with the host: {syncs}"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "check_finite" for n in cls.body)


def test_task_checks_deferred_physics_finiteness_at_its_time_out_sync():
    from dofbot_rl.config import load_config
    from dofbot_rl.tasks import make_task

    task = make_task(load_config(["num_envs=4", "sim_device=cpu", "task.env.episode_length=6"]))
    calls = []
    task.physics.check_finite = lambda: calls.append(1)  # what a GPU backend that defers the check offers
    task.reset()
    for _ in range(12):
        task.step(torch.zeros(4, 6))
    assert calls, "the task never asked the physics backend for its deferred finiteness check"


def test_the_kit_layer_calls_only_what_the_panel_model_has():
    """Every ``model.X(...)`` call in app/ (the Kit layer cannot run here) names a PanelModel
    method or attribute that exists, with keywords that method takes."""
    import inspect

    from dofbot_rl.panel.model import PanelModel

    problems, checked = [], 0
    for path in (PKG / "app").rglob("*.py"):
        tree = ast.parse(path.read_text())
        ui_models = {id(n) for lam in ast.walk(tree) if isinstance(lam, ast.Lambda)
                     and "model" in [a.arg for a in lam.args.args] for n in ast.walk(lam.body)}  # omni.ui's model
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)) or id(node) in ui_models:
                continue
            owner = node.func.value
            if ast.unparse(owner) not in ("model", "self.model", "ext.model", "self.ext.model", "self._model().model"):
                continue  # omni.ui widgets have a .model of their own
            name = node.func.attr
            checked += 1
            member = getattr(PanelModel, name, None)
            if member is None:
                problems.append(f"{path.name}:{node.lineno} PanelModel has no {name}")
                continue
            if callable(member):
                params = inspect.signature(member).parameters
                takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
                for kw in node.keywords:
                    if kw.arg and kw.arg not in params and not takes_any:
                        problems.append(f"{path.name}:{node.lineno} PanelModel.{name} takes no {kw.arg}=")
    assert checked > 10 and not problems, problems
