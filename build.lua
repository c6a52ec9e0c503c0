-- lazy.nvim runs this after installing or updating the plugin (other managers: run
-- `:LofiInstall`, or `nvim -l build.lua` from the plugin folder). It creates the plugin's
-- own Python venv at <plugin>/.venv and installs the daemon into it.
--
-- lazy.nvim runs a build file before `opts`/`config` are applied, so the install options
-- are read here from the plugin's lazy spec (`opts = { install = { extras = { "models" } } }`).
-- LOFI_EXTRAS=models and LOFI_PYTHON=/path/to/python3 in the environment win over them.
local root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
vim.opt.runtimepath:prepend(root)

local install = require("lofi.install")
install.build(install.build_options(root))
