--- A lualine component: `sections = { lualine_x = { require("lofi.lualine") } }`.
---
--- lualine pastes a component's text into the 'statusline' it builds, so the text is
--- statusline syntax there: a bare `%` (as in "♪ 42%") would be E539 and stop every
--- refresh. This hands lualine the escaped form; empty when idle, so lualine hides it.
return function()
  return require("lofi").statusline({ escape = true })
end
