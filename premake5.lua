-- Kit build entry, in the shape of NVIDIA's Kit extension template (repo_build + premake).
-- dofbot.rl_examples is a pure-Python extension: nothing is compiled; a build only links
-- exts/ into the Kit app's extension search path. Users need none of this: Isaac Sim loads
-- the extension straight from `--ext-folder exts` (see docs/extension.md).

-- Shared build scripts from the repo_build package (fetched by `repo build`).
repo_build = require("omni/repo/build")

-- Repository root.
root = repo_build.get_abs_path(".")

-- The Kit template's premake configuration: solution, configurations, extension discovery under exts/.
dofile("_repo/deps/repo_kit_tools/kit-template/premake5.lua")
