"""The greeter's two messages by hand ({string name = 1} and {string msg = 1}): field 1,
length-delimited, so the tests need neither protobuf nor generated code."""


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(text):
    """A message whose field 1 is `text`."""
    data = text.encode("utf-8")
    return b"\x0a" + _varint(len(data)) + data


def decode(data):
    """Field 1 of a message (other fields skipped); raises ValueError on a malformed one."""
    text, i = "", 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            if i + n > len(data):
                raise ValueError("truncated field")
            if field == 1:
                text = data[i : i + n].decode("utf-8")
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
    return text


def _read_varint(data, i):
    shift, value = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
