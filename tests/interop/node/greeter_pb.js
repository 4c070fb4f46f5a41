// The greeter's two messages by hand ({string name = 1} and {string msg = 1}): field 1,
// length-delimited, so the tests need neither protobufjs nor generated code.
'use strict';

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function readVarint(data, i) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (i >= data.length || scale > 2 ** 56) throw new Error('bad varint');
    const byte = data[i++];
    value += (byte & 0x7f) * scale;
    if (!(byte & 0x80)) return [value, i];
    scale *= 128;
  }
}

/** A message whose field 1 is `text`. */
function encode(text) {
  const data = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), varint(data.length), data]);
}

/** Field 1 of a message (other fields skipped); throws on a malformed one. */
function decode(data) {
  let text = '';
  let i = 0;
  while (i < data.length) {
    let key;
    [key, i] = readVarint(data, i);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      [, i] = readVarint(data, i);
    } else if (wire === 2) {
      let n;
      [n, i] = readVarint(data, i);
      if (i + n > data.length) throw new Error('truncated field');
      if (field === 1) text = data.subarray(i, i + n).toString('utf8');
      i += n;
    } else if (wire === 1) {
      i += 8;
    } else if (wire === 5) {
      i += 4;
    } else {
      throw new Error(`wire type ${wire}`);
    }
  }
  return text;
}

module.exports = { encode, decode };
