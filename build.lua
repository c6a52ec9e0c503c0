-- lazy.nvim runs this after installing or updating the plugin (other managers: run
-- `:LofiInstall`, or `nvim -l build.lua` from the plugin folder). It creates the plugin's
-- own Python venv at <plugin>/.venv and installs the daemon into it. Set
-- LOFI_EXTRAS=models to also install torch, transformers and diffusers for the AI backends,
-- and LOFI_PYTHON to create the venv with another Python than python3.
local root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
vim.opt.runtimepath:prepend(root)

local extras = {}
for word in (os.getenv("LOFI_EXTRAS") or ""):gmatch("[^,%s]+") do
  extras[#extras + 1] = word
end

require("lofi.install").build({
  extras = #extras > 0 and extras or nil,
  python = os.getenv("LOFI_PYTHON"),
})
