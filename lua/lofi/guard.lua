--- Keeps `:qa` from silently killing tracks that are generating: while one is, a hidden
--- buffer "lofi://generating" counts as unsaved work, so `:qa` and `:q` in the last window
--- stop with E162 naming it (like a running terminal job does). `:qa!` still quits and the
--- daemon is shut down as usual; `:w` in that buffer explains instead of writing.
local M = {}
local H = { buf = nil }

M.name = "lofi://generating"

function H.valid()
  return H.buf ~= nil and vim.api.nvim_buf_is_valid(H.buf)
end

--- Hold (`count` > 0) or release (0) the guard; `count` is the number of unfinished tracks.
---@param count integer
function M.set(count)
  if count > 0 then
    if not H.valid() then
      H.buf = vim.api.nvim_create_buf(false, true)
      vim.bo[H.buf].buftype = "acwrite"
      vim.bo[H.buf].bufhidden = "hide"
      vim.bo[H.buf].swapfile = false
      vim.api.nvim_buf_set_name(H.buf, M.name)
      vim.api.nvim_create_autocmd("BufWriteCmd", {
        buffer = H.buf,
        callback = function()
          require("lofi.notify").warn("a track is generating; :LofiCancel stops it, or quit with :qa!")
        end,
      })
      -- Neovim's refusal only says "E37: No write since last change": say which and why.
      vim.api.nvim_create_autocmd("QuitPre", {
        group = vim.api.nvim_create_augroup("lofi.guard", { clear = true }),
        callback = function()
          if H.valid() and H.quitting_all() then
            require("lofi.notify").warn(vim.api.nvim_buf_get_lines(H.buf, 0, 1, false)[1])
          end
        end,
      })
    end
    local text = string.format("%d track%s generating or queued: :LofiCancel, or :qa! to quit anyway", count, count == 1 and "" or "s")
    vim.api.nvim_buf_set_lines(H.buf, 0, -1, false, { text })
    vim.bo[H.buf].modified = true
  elseif H.valid() then
    vim.bo[H.buf].modified = false
    pcall(vim.api.nvim_buf_delete, H.buf, { force = true })
    H.buf = nil
  end
end

-- Whether this quit would leave Neovim: :qa/:xa/:wqa, or :q in the last window.
function H.quitting_all()
  local last = vim.fn.histget("cmd", -1)
  if last:match("^%s*w?qa") or last:match("^%s*xa") or last:match("^%s*quita") then
    return true
  end
  local normal = vim.tbl_filter(function(w) return vim.api.nvim_win_get_config(w).relative == "" end, vim.api.nvim_list_wins())
  return #normal <= 1
end

function M.active()
  return H.valid()
end

return M
