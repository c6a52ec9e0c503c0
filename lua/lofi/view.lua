--- A scratch buffer in a float for text longer than one message line (:LofiStatus, long
--- errors with the built-in vim.notify): no hit-enter prompt, `q` closes it.
local M = {}
local H = {}

--- Show `lines` under `title`; replaces the float shown before. Returns the window.
---@param title string
---@param lines string[]
---@return integer win
function M.show(title, lines)
  if H.win and vim.api.nvim_win_is_valid(H.win) then
    vim.api.nvim_win_close(H.win, true)
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "lofi"
  local width = 20
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.min(width, vim.o.columns - 4)
  local height = math.min(#lines, math.max(1, vim.o.lines - 6))
  H.win = vim.api.nvim_open_win(buf, false, {
    relative = "editor",
    row = math.max(0, vim.o.lines - height - 4),
    col = math.max(0, vim.o.columns - width - 2),
    width = width,
    height = height,
    style = "minimal",
    border = "rounded",
    title = " " .. title .. " ",
    focusable = true,
  })
  vim.wo[H.win].wrap = true
  vim.keymap.set("n", "q", "<Cmd>close<CR>", { buffer = buf, nowait = true, desc = "lofi: close" })
  -- Gone on the next move: it is a notice, not a place to work.
  local win = H.win
  vim.api.nvim_create_autocmd({ "CursorMoved", "InsertEnter", "BufLeave" }, {
    once = true,
    callback = function()
      if vim.api.nvim_win_is_valid(win) and vim.api.nvim_get_current_win() ~= win then
        pcall(vim.api.nvim_win_close, win, true)
      end
    end,
  })
  return H.win
end

--- The window shown last, if it is still open.
function M.win()
  return H.win and vim.api.nvim_win_is_valid(H.win) and H.win or nil
end

return M
