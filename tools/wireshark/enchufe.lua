-- enchufe.lua - a Wireshark dissector for the enchufe protocol
-- (docs/protocol.md): a 2-byte big-endian JSON header length, the JSON
-- header, then content-length bytes of content.
--
-- Load it with:  wireshark -X lua_script:enchufe.lua
--           or:  tshark -X lua_script:enchufe.lua -r capture.pcap -O enchufe
-- or copy it to ~/.local/lib/wireshark/plugins/. The port is a preference
-- (Edit > Preferences > Protocols > ENCHUFE), 65432 by default.
--
-- TLS (enchufe-server --tls-port): set the "TLS port" preference, tell
-- Wireshark that port is TLS, and give it the session keys the client
-- wrote where SSLKEYLOGFILE said (enchufe-cli honours it, as curl does):
--   tshark -X lua_script:enchufe.lua -o enchufe.tls_port:65443 \
--     -o tls.keylog_file:keys.log -d tcp.port==65443,tls -r capture.pcap -O enchufe
--
-- A message split over several TCP segments is reassembled (TCP
-- desegmentation), and several messages in one segment are all shown.

local enchufe = Proto("enchufe", "enchufe application protocol")

local f = enchufe.fields
f.header_len = ProtoField.uint16("enchufe.header_len", "JSON header length", base.DEC)
f.header = ProtoField.string("enchufe.header", "JSON header")
f.byteorder = ProtoField.string("enchufe.byteorder", "byteorder")
f.content_type = ProtoField.string("enchufe.content_type", "content-type")
f.content_encoding = ProtoField.string("enchufe.content_encoding", "content-encoding")
f.content_length = ProtoField.uint32("enchufe.content_length", "content-length", base.DEC)
f.content = ProtoField.bytes("enchufe.content", "content")
f.content_text = ProtoField.string("enchufe.content_text", "content (text)")

enchufe.prefs.port = Pref.uint("TCP port", 65432, "TCP port of enchufe traffic")
enchufe.prefs.tls_port = Pref.uint("TLS port", 65443,
                                   "TCP port of enchufe traffic in TLS (decrypted with a key log)")

-- The value of a string or integer key of the header text. The dissector
-- shows what is there; it does not validate JSON (the server does).
local function json_value(text, key)
  local pattern_key = '"' .. key:gsub("%-", "%%-") .. '"%s*:%s*'
  local s = text:match(pattern_key .. '"([^"]*)"')
  if s then return s end
  return text:match(pattern_key .. "(%-?%d+)")
end

-- Dissects the message at offset. Returns the bytes it used, or nil and
-- the number of bytes still missing (for TCP reassembly).
local function dissect_message(tvb, pinfo, tree, offset)
  local avail = tvb:len() - offset
  if avail < 2 then
    return nil, DESEGMENT_ONE_MORE_SEGMENT
  end
  local hlen = tvb(offset, 2):uint()
  if avail < 2 + hlen then
    return nil, 2 + hlen - avail
  end
  local text = tvb(offset + 2, hlen):string()
  local clen = tonumber(json_value(text, "content-length") or "0") or 0
  local total = 2 + hlen + clen
  if avail < total then
    return nil, total - avail
  end

  local ctype = json_value(text, "content-type") or "?"
  local msg = tree:add(enchufe, tvb(offset, total),
                       string.format("enchufe message: %s, %d bytes of content", ctype, clen))
  msg:add(f.header_len, tvb(offset, 2))
  local h = msg:add(f.header, tvb(offset + 2, hlen), text)
  h:add(f.byteorder, tvb(offset + 2, hlen), json_value(text, "byteorder") or "?")
  h:add(f.content_type, tvb(offset + 2, hlen), ctype)
  h:add(f.content_encoding, tvb(offset + 2, hlen), json_value(text, "content-encoding") or "?")
  h:add(f.content_length, tvb(offset + 2, hlen), clen)
  if clen > 0 then
    local body = tvb(offset + 2 + hlen, clen)
    msg:add(f.content, body)
    if ctype == "text/json" then
      msg:add(f.content_text, body, body:string(ENC_UTF_8))
    end
  end
  return total
end

function enchufe.dissector(tvb, pinfo, tree)
  local offset, count = 0, 0
  while offset < tvb:len() do
    local used, missing = dissect_message(tvb, pinfo, tree, offset)
    if not used then
      -- Ask TCP for the rest, and claim the whole buffer: returning less
      -- would tell TCP these bytes are not ours.
      pinfo.desegment_offset = offset
      pinfo.desegment_len = missing
      offset = tvb:len()
      break
    end
    offset = offset + used
    count = count + 1
  end
  if count > 0 then
    pinfo.cols.protocol = "ENCHUFE"
    pinfo.cols.info = string.format("%d enchufe message%s", count, count == 1 and "" or "s")
  end
  return offset
end

local registered_port = enchufe.prefs.port
local registered_tls_port = enchufe.prefs.tls_port
DissectorTable.get("tcp.port"):add(registered_port, enchufe)
-- What TLS decrypts on that port comes here (the TLS dissector's table).
DissectorTable.get("tls.port"):add(registered_tls_port, enchufe)

function enchufe.prefs_changed()
  if registered_port ~= enchufe.prefs.port then
    DissectorTable.get("tcp.port"):remove(registered_port, enchufe)
    registered_port = enchufe.prefs.port
    DissectorTable.get("tcp.port"):add(registered_port, enchufe)
  end
  if registered_tls_port ~= enchufe.prefs.tls_port then
    DissectorTable.get("tls.port"):remove(registered_tls_port, enchufe)
    registered_tls_port = enchufe.prefs.tls_port
    DissectorTable.get("tls.port"):add(registered_tls_port, enchufe)
  end
end
