"""Write tests/data/kit_signatures.json: the names and signatures of the Isaac Sim and Kit APIs
the Kit layer calls, per version, read off public sources (no network in CI: the table is
checked in; ``tests/test_isaacsim_contract.py`` reads it).

Data only: module, class, function, method and attribute names, parameter names and
whether a function takes ``**kwargs``; extension names per version. No code is copied.

Sources (give the ones you have; each adds its versions):

* ``--isaacsim-git DIR``: a clone (or bare mirror) of github.com/isaac-sim/IsaacSim; tags
  v5.0.0, v5.1.0, v6.0.0, v6.0.1 (``source/extensions``, ``source/deprecated``, the
  ``premake5.lua`` links that place ``python/`` under the module path, ``source/apps/*.kit``);
* ``--omni-isaac-git DIR@COMMIT``: github.com/phgandhi02/isaac-sim-4.1.0 at d089ac4 (an
  Isaac Sim 4.1 ``exts``/``extsPhysics`` snapshot: the ``omni.isaac.*`` family);
* ``--wheels DIR``: the ``isaacsim-core`` and ``isaacsim-example`` 6.2.0.0 wheels;
* ``--stubs-git DIR``: github.com/work-r-labs/isaacsim_typings_5 (``typings/**.pyi``: the Kit
  Python APIs of Isaac Sim 5.x, Kit 107);
* ``--kit-wheel FILE``: the ``omniverse-kit`` wheel from PyPI (Kit 110.4: ``carb``/``omni.kit.app``
  stubs, and the C++ headers of ``omni.ui`` and ``omni.timeline``, whose Python names are the
  snake_case of the C++ ones).

Get the wheels with ``pip download --no-deps --only-binary=:all: --python-version 3.12
--platform manylinux_2_35_x86_64 -d WHEELS isaacsim-core==6.2.0.0 isaacsim-example==6.2.0.0
omniverse-kit==110.4.0.386251``, the repositories with ``git clone``. Run (about a minute)::

    python tools/kit_signatures.py --isaacsim-git /path/IsaacSim --omni-isaac-git /path/isaac-sim-4.1.0@d089ac4 \\
        --wheels ~/.cache/dofbot-rl/isaacsim-wheels --stubs-git /path/isaacsim_typings_5 \\
        --kit-wheel omniverse_kit-110.4.0.386251-cp312-none-manylinux_2_35_x86_64.whl
"""

import argparse
import ast
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional, Set

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "kit_signatures.json"
ISAACSIM_TAGS = {"5.0": "v5.0.0", "5.1": "v5.1.0", "6.0": "v6.0.0", "6.0.1": "v6.0.1"}

#: What is recorded per API family: whole modules (their public names) and classes (all
#: members, inherited ones included).
ROOTS = {
    "isaacsim": {
        "modules": ["isaacsim.core.api", "isaacsim.core.prims", "isaacsim.core.cloner", "isaacsim.core.utils.stage",
                    "isaacsim.core.utils.viewports", "isaacsim.core.version", "isaacsim.examples.browser"],
        "classes": ["isaacsim.core.api.World", "isaacsim.core.api.physics_context.PhysicsContext",
                    "isaacsim.core.api.scenes.Scene", "isaacsim.core.prims.Articulation", "isaacsim.core.prims.RigidPrim",
                    "isaacsim.core.prims.XFormPrim", "isaacsim.core.cloner.GridCloner",
                    "isaacsim.examples.browser.extension.ExampleBrowserExtension",
                    "isaacsim.examples.browser.model.Example"],
    },
    "omni.isaac": {
        "modules": ["omni.isaac.core", "omni.isaac.core.articulations", "omni.isaac.core.prims", "omni.isaac.cloner",
                    "omni.isaac.core.utils.stage", "omni.isaac.core.utils.viewports", "omni.isaac.version"],
        "classes": ["omni.isaac.core.World", "omni.isaac.core.physics_context.PhysicsContext",
                    "omni.isaac.core.scenes.Scene", "omni.isaac.core.articulations.ArticulationView",
                    "omni.isaac.core.prims.RigidPrimView", "omni.isaac.core.prims.XFormPrimView",
                    "omni.isaac.cloner.GridCloner"],
    },
    "kit": {
        "modules": ["carb.input", "carb.settings", "carb.eventdispatcher", "omni.kit.app", "omni.ext",
                    "omni.kit.menu.utils", "omni.kit.actions.core", "omni.usd", "omni.usd._usd", "omni.kit.commands", "omni.kit.undo",
                    "omni.kit.viewport.utility", "omni.kit.ui_test", "omni.kit.test"],
        "classes": ["carb.input.IInput", "carb.input.InputEvent", "carb.input.KeyboardEvent", "carb.input.DeviceType",
                    "carb.input.KeyboardEventType", "carb.settings.ISettings", "omni.kit.app.IApp",
                    "omni.kit.menu.utils.MenuItemDescription", "omni.kit.actions.core.IActionRegistry",
                    "omni.usd._usd.UsdContext", "omni.usd._usd.StageEventType", "omni.usd._usd.Selection", "omni.kit.commands.Command",
                    "omni.kit.test.AsyncTestCase", "omni.kit.ui_test.WidgetRef"],
    },
}


# ----------------------------------------------------------------------------------
# Module sources: name -> text loader
# ----------------------------------------------------------------------------------
class ModuleSet:
    """Python sources by module name (``pkg.mod``; packages also as ``pkg.__init__``)."""

    def __init__(self):
        self.loaders: Dict[str, Callable[[], str]] = {}
        self.packages: Set[str] = set()
        self.extensions: Set[str] = set()
        self._trees = {}

    def add(self, relpath: str, loader: Callable[[], str]) -> None:
        """Add ``a/b/c.py`` (or ``.pyi``; ``__init__`` makes a package)."""
        parts = relpath.split("/")
        stem = parts[-1].rsplit(".", 1)[0]
        if not all(p.isidentifier() for p in parts[:-1]) or not stem.isidentifier():
            return
        if stem == "__init__":
            module = ".".join(parts[:-1])
            self.packages.add(module)
        else:
            module = ".".join(parts[:-1] + [stem])
        if relpath.endswith(".pyi") or module not in self.loaders:  # stubs win over sources
            self.loaders[module] = loader

    def tree(self, module: str) -> Optional[ast.Module]:
        if module not in self.loaders:
            return None
        if module not in self._trees:
            text = self.loaders[module]()
            try:
                self._trees[module] = ast.parse(text)
            except SyntaxError:  # generated stubs name parameters after keywords (``in: str``)
                text = re.sub(r"([(,]\s*)(in|from|lambda|is|not|and|or|for|with|as|if|else|pass|global)(\s*:)", r"\1\2_\3", text)
                self._trees[module] = _parse_lenient(text)
        return self._trees[module]

    # -- resolution (re-exports and star imports followed) -------------------------
    def resolve(self, module: str, name: str, depth: int = 0):
        """``(kind, node, module)`` of ``module.name`` or None."""
        if depth > 12:
            return None
        if f"{module}.{name}" in self.loaders:
            return "module", None, f"{module}.{name}"
        tree = self.tree(module)
        if tree is None:
            return None
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return "class", node, module
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return "function", node, module
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
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
                        return self.resolve(source, alias.name, depth + 1) or ("value", None, source)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname == name:
                        return "module", None, alias.name
        return None

    def _absolute(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".") if module in self.packages else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def symbol(self, dotted: str):
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            found = self.resolve(".".join(parts[:cut]), parts[cut])
            if found and cut == len(parts) - 1:
                return found
        return None

    def public_names(self, module: str, depth: int = 0) -> Set[str]:
        tree = self.tree(module)
        names: Set[str] = set()
        if tree is None or depth > 12:
            return names
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        names |= self.public_names(self._absolute(module, node), depth + 1)
                    else:
                        names.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                names.update(a.asname for a in node.names if a.asname)
        for sub in self.loaders:
            if sub.startswith(module + ".") and sub.count(".") == module.count(".") + 1:
                names.add(sub.rsplit(".", 1)[1])
        return {n for n in names if not n.startswith("_") or n == "__init__"}

    def members(self, cls: ast.ClassDef, module: str, depth: int = 0) -> Dict[str, dict]:
        """Every member of ``cls`` and its bases (a subclass's definition wins)."""
        out: Dict[str, dict] = {}
        if depth > 12:
            return out
        for base in cls.bases:
            name = ast.unparse(base)
            found = self.symbol(name) if "." in name else self.resolve(module, name)
            if found and found[0] == "class":
                out.update(self.members(found[1], found[2], depth + 1))
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sig = signature(node)
                if node.name in out and out[node.name].get("kind") == "function" and _is_overload(node):
                    prev = out[node.name]  # pybind overloads: the union of their parameters
                    sig["params"] = sorted(set(prev["params"]) | set(sig["params"]))
                    sig["varkw"] = prev["varkw"] or sig["varkw"]
                out[node.name] = sig
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        out[t.id] = {"kind": "attribute"}
            elif isinstance(node, ast.ClassDef):
                out[node.name] = {"kind": "class"}
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__init__":
                for sub in ast.walk(node):
                    if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                            and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                        out.setdefault(sub.attr, {"kind": "attribute"})
        return out


def _parse_lenient(text: str) -> ast.Module:
    """Parse generated stubs; a ``def`` line Python rejects (defaults before non-defaults) loses its defaults."""
    lines = text.splitlines()
    for _ in range(200):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            i = (exc.lineno or 1) - 1
            if i >= len(lines) or "def " not in lines[i]:
                return ast.Module(body=[], type_ignores=[])
            fixed = re.sub(r"\s*=\s*[^,()\[\]]+(?=[,)])", "", lines[i])
            if fixed == lines[i]:
                return ast.Module(body=[], type_ignores=[])
            lines[i] = fixed
    return ast.Module(body=[], type_ignores=[])


def _is_overload(node) -> bool:
    return any(ast.unparse(d).endswith("overload") for d in node.decorator_list)


def signature(func) -> dict:
    """``{"kind": "function", "params": [...], "varkw": bool}`` (``self`` dropped; properties are attributes)."""
    if any(ast.unparse(d) in ("property", "cached_property", "functools.cached_property") or ast.unparse(d).endswith(".setter")
           for d in func.decorator_list):
        return {"kind": "attribute"}
    a = func.args
    params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    if params and params[0] in ("self", "cls"):
        params = params[1:]
    return {"kind": "function", "params": params, "varkw": a.kwarg is not None}


# ----------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------
def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True, text=True).stdout


def _toml_dependency_names(text: str) -> Set[str]:
    names: Set[str] = set()
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            continue
        if section == "[dependencies]":
            m = re.match(r'^"([\w.\-]+)"\s*=', stripped)
            if m:
                names.add(m.group(1))
    return names


_LINK = re.compile(r'\{\s*"([^"]+)"\s*,\s*ext\.target_dir\s*\.\.\s*"/([^"]+)"\s*\}')


def read_isaacsim_tag(git_dir: str, tag: str) -> ModuleSet:
    """The ``isaacsim.*`` Python modules of one IsaacSim tag, placed as their premake links place them."""
    ms = ModuleSet()
    files = _git(git_dir, "ls-tree", "-r", "--name-only", tag, "--", "source/extensions", "source/deprecated",
                 "source/apps").splitlines()
    by_ext: Dict[str, list] = {}
    for path in files:
        parts = path.split("/")
        if parts[1] == "apps" and path.endswith(".kit"):
            ms.extensions |= _toml_dependency_names(_git(git_dir, "show", f"{tag}:{path}"))
            continue
        if len(parts) > 3:
            by_ext.setdefault("/".join(parts[:3]), []).append("/".join(parts[3:]))
    for ext_dir, rels in by_ext.items():
        ms.extensions.add(ext_dir.split("/")[-1])
        if "config/extension.toml" in rels:
            ms.extensions |= _toml_dependency_names(_git(git_dir, "show", f"{tag}:{ext_dir}/config/extension.toml"))
        links = []
        if "premake5.lua" in rels:
            links = _LINK.findall(_git(git_dir, "show", f"{tag}:{ext_dir}/premake5.lua"))
        for rel in rels:
            if not rel.endswith(".py") or "/tests/" in f"/{rel}":
                continue
            target = None
            for src, dst in links:
                if src.endswith("*.py") and "/".join(rel.split("/")[:-1]) == src.rsplit("/", 1)[0]:
                    target = dst + "/" + rel.split("/")[-1]
                elif rel == src or rel.startswith(src + "/"):
                    target = dst + rel[len(src):]
            if target is None and rel.split("/")[0] in ("isaacsim", "omni"):
                target = rel
            if target is not None:
                ms.add(target, lambda p=f"{tag}:{ext_dir}/{rel}": _git(git_dir, "show", p))
    return ms


def read_snapshot(git_dir: str, commit: str) -> ModuleSet:
    """An Isaac Sim 4.1 ``exts``/``extsPhysics`` tree: ``exts/<ext>/<package path>.py``."""
    ms = ModuleSet()
    for path in _git(git_dir, "ls-tree", "-r", "--name-only", commit, "--", "exts", "extsPhysics").splitlines():
        parts = path.split("/")
        if len(parts) < 3:
            continue
        ms.extensions.add(parts[1])
        rel = "/".join(parts[2:])
        if rel == "config/extension.toml":
            ms.extensions |= _toml_dependency_names(_git(git_dir, "show", f"{commit}:{path}"))
        elif rel.endswith(".py") and "tests" not in parts and parts[2] in ("omni", "isaacsim", "pxr"):
            ms.add(rel, lambda p=f"{commit}:{path}": _git(git_dir, "show", p))
    return ms


def read_wheels(folder: Path, version: str) -> ModuleSet:
    ms = ModuleSet()
    for wheel in sorted(folder.glob(f"isaacsim_*-{version}-*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) > 3 and parts[0] == "isaacsim" and parts[1] in ("exts", "extsDeprecated"):
                    ms.extensions.add(parts[2])
                    rel = "/".join(parts[3:])
                    if rel == "config/extension.toml":
                        ms.extensions |= _toml_dependency_names(zf.read(name).decode())
                    elif rel.endswith(".py") and "tests" not in parts[3:-1]:
                        ms.add(rel, lambda w=wheel, n=name: zipfile.ZipFile(w).read(n).decode("utf-8"))
    return ms


def read_stubs(git_dir: str) -> ModuleSet:
    ms = ModuleSet()
    for path in _git(git_dir, "ls-tree", "-r", "--name-only", "HEAD", "--", "typings").splitlines():
        if path.endswith(".pyi"):
            ms.add(path[len("typings/"):], lambda p=f"HEAD:{path}": _git(git_dir, "show", p))
    return ms


def read_kit_wheel(wheel: Path) -> ModuleSet:
    ms = ModuleSet()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("omni/kernel/py/") and name.endswith((".py", ".pyi")):
                ms.add(name[len("omni/kernel/py/"):], lambda n=name: zipfile.ZipFile(wheel).read(n).decode("utf-8"))
    return ms


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def read_headers(wheel: Path, folder: str) -> Dict[str, dict]:
    """C++ classes of ``omni/dev/include/<folder>/*.h`` as Python sees them: class -> bases,
    snake_case names (properties, their notify setters, callbacks' set/call/has_*_fn, methods), enums."""
    classes: Dict[str, dict] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not (name.startswith(f"omni/dev/include/{folder}/") and name.endswith(".h")) or name.count("/") != 4 + folder.count("/"):
                continue
            text = re.sub(r"/\*.*?\*/|//[^\n]*", "", zf.read(name).decode("utf-8", "replace"), flags=re.S)
            heads = list(re.finditer(r"(?<!enum )class\s+(?:OMNIUI_CLASS_API\s+)?(\w+)\s*(?::\s*([^{;]+))?\{", text))
            for i, m in enumerate(heads):
                cls, bases_text = m.group(1), m.group(2) or ""
                bases = [b.split("<")[0].split("::")[-1].strip() for b in re.findall(r"public\s+([\w:<>]+)", bases_text)]
                body = text[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)]
                entry = classes.setdefault(cls, {"bases": bases, "names": set()})
                for prop in re.finditer(r"OMNIUI_PROPERTY\(\s*[^,]+(?:<[^>]*>)?\s*,\s*(\w+)([^;]*?)\);", body):
                    entry["names"].update({_snake(prop.group(1)), prop.group(1)})
                    for setter in re.findall(r"NOTIFY\s*,\s*(set\w+)", prop.group(2)):
                        entry["names"].add(_snake(setter))
                for cb in re.findall(r"OMNIUI_CALLBACK\(\s*(\w+)", body):
                    entry["names"].update({f"set_{_snake(cb)}_fn", f"call_{_snake(cb)}_fn", f"has_{_snake(cb)}_fn"})
                for meth in re.findall(r"(?:virtual\s+|static\s+)?[\w:<>*&]+\s+([a-z]\w*)\s*\([^;{]*\)\s*(?:const)?\s*(?:override)?\s*[;{=]", body):
                    entry["names"].add(_snake(meth))
                for ctor in re.findall(rf"\b{cls}\s*\(([^)]*)\)", body):  # constructor parameters (C++ spelling)
                    for param in ctor.split(","):
                        ident = re.findall(r"(\w+)\s*(?:=.*)?$", param.strip())
                        if ident and ident[0] not in ("void", "const"):
                            entry["names"].add("init:" + ident[0])
                for enum in re.findall(r"enum\s+class\s+(\w+)", body):
                    classes.setdefault(enum, {"bases": [], "names": set()})
            for enum in re.findall(r"enum\s+class\s+(\w+)", text):
                classes.setdefault(enum, {"bases": [], "names": set()})
    return {k: {"bases": v["bases"], "names": sorted(v["names"])} for k, v in sorted(classes.items())}


# ----------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------
def table(ms: ModuleSet, roots: dict) -> dict:
    """``{"symbols": {dotted: {...}}, "missing": [...]}`` for one version of one family."""
    symbols: Dict[str, dict] = {}
    missing = []
    for module in roots["modules"]:
        if ms.tree(module) is None:
            missing.append(module)
            continue
        symbols[module] = {"kind": "module"}
        for name in sorted(ms.public_names(module)):
            found = ms.resolve(module, name)
            if found is None:
                continue
            kind, node, _ = found
            entry = signature(node) if kind == "function" else {"kind": kind}
            symbols[f"{module}.{name}"] = entry
            if kind == "class":
                init = ms.members(node, found[2]).get("__init__")
                if init:
                    symbols[f"{module}.{name}"]["init"] = init
    for dotted in roots["classes"]:
        found = ms.symbol(dotted)
        if not found or found[0] != "class":
            missing.append(dotted)
            continue
        symbols.setdefault(dotted, {"kind": "class"})
        for name, entry in ms.members(found[1], found[2]).items():
            symbols[f"{dotted}.{name}"] = entry
        if f"{dotted}.__init__" in symbols:
            symbols[dotted]["init"] = symbols[f"{dotted}.__init__"]
    return {"symbols": dict(sorted(symbols.items())), "missing": sorted(missing)}


def _dump(data) -> str:
    """JSON with one symbol (or header class) per line, for readable diffs."""
    def leaf(obj):
        return "kind" in obj or "bases" in obj or not any(isinstance(v, dict) for v in obj.values())

    def block(obj, depth):
        if isinstance(obj, dict) and obj and not leaf(obj):
            pad = " " * depth
            inner = [f"{pad} {json.dumps(k)}: {block(v, depth + 1)}" for k, v in obj.items()]
            return "{\n" + ",\n".join(inner) + f"\n{pad}}}"
        return json.dumps(obj, separators=(",", ":"))
    return block(data, 0) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isaacsim-git")
    p.add_argument("--omni-isaac-git", help="DIR@COMMIT")
    p.add_argument("--wheels", type=Path)
    p.add_argument("--wheel-version", default="6.2.0.0")
    p.add_argument("--stubs-git")
    p.add_argument("--kit-wheel", type=Path)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    data = {"generated_by": "tools/kit_signatures.py", "sources": {}, "families": {"isaacsim": {}, "omni.isaac": {}},
            "kit": {}, "omni_ui": {}, "omni_timeline": {}, "extensions": {}}
    if args.isaacsim_git:
        for version, tag in ISAACSIM_TAGS.items():
            ms = read_isaacsim_tag(args.isaacsim_git, tag)
            data["families"]["isaacsim"][version] = table(ms, ROOTS["isaacsim"])
            data["extensions"][version] = sorted(ms.extensions)
            data["sources"][version] = f"github.com/isaac-sim/IsaacSim tag {tag}"
    if args.wheels:
        version = ".".join(args.wheel_version.split(".")[:2])
        ms = read_wheels(args.wheels, args.wheel_version)
        data["families"]["isaacsim"][version] = table(ms, ROOTS["isaacsim"])
        data["extensions"][version] = sorted(ms.extensions)
        data["sources"][version] = f"PyPI wheels isaacsim-core and isaacsim-example {args.wheel_version} (isaacsim.* only)"
    if args.omni_isaac_git:
        git_dir, commit = args.omni_isaac_git.rsplit("@", 1)
        ms = read_snapshot(git_dir, commit)
        data["families"]["omni.isaac"]["4.1"] = table(ms, ROOTS["omni.isaac"])
        data["extensions"]["4.1"] = sorted(ms.extensions)
        data["sources"]["4.1"] = f"github.com/phgandhi02/isaac-sim-4.1.0 at {commit} (Isaac Sim 4.1 exts, omni.isaac.*)"
    if args.stubs_git:
        stubs = read_stubs(args.stubs_git)
        data["kit"]["107"] = table(stubs, ROOTS["kit"])
        # packages the 5.x runtime had (stubs are generated from it): evidence for Kit SDK
        # extensions of the same name that no Isaac Sim 5.x extension.toml happens to name
        data["kit"]["107"]["packages"] = sorted(m for m in stubs.packages if m.startswith(("omni.", "carb")))
        data["sources"]["kit 107"] = "github.com/work-r-labs/isaacsim_typings_5 (.pyi stubs of Isaac Sim 5.x's Kit)"
    if args.kit_wheel:
        kit_roots = {"modules": [m for m in ROOTS["kit"]["modules"] if m.split(".")[0] == "carb" or m in ("omni.kit.app", "omni.ext")],
                     "classes": [c for c in ROOTS["kit"]["classes"] if c.startswith(("carb.", "omni.kit.app."))]}
        data["kit"]["110.4"] = table(read_kit_wheel(args.kit_wheel), kit_roots)
        data["omni_ui"]["110.4"] = read_headers(args.kit_wheel, "omni/ui")
        data["omni_timeline"]["110.4"] = read_headers(args.kit_wheel, "omni/timeline")
        data["sources"]["kit 110.4"] = f"PyPI wheel {args.kit_wheel.name} (carb/omni.kit.app stubs; omni.ui, omni.timeline headers)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dump(data))
    for family, versions in data["families"].items():
        for version, t in versions.items():
            print(f"{family} {version}: {len(t['symbols'])} symbols; missing roots: {t['missing']}")
    for version, t in data["kit"].items():
        print(f"kit {version}: {len(t['symbols'])} symbols; missing roots: {t['missing']}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
