-- The tier and badge of a profile: five branches and a lookup table.
local badges = { gold = "★★★", silver = "★★", bronze = "★", new = "·", banned = "✗" }

local function tier_of(item)
  local visits = item.visits or 0
  if item.status == "banned" then return "banned" end
  if visits >= 15 then return "gold" end
  if visits >= 10 then return "silver" end
  if visits >= 5 then return "bronze" end
  return "new"
end

function transform(item, ctx)
  local tier = tier_of(item)
  if item.tier == tier then return nil end  -- already right: no write
  item.tier = tier
  item.badge = badges[tier]
  return item
end
