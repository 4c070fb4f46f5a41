//! On-disk record framing: `[len u32 LE][crc32 u32 LE][payload]`.
//!
//! Owns encoding/decoding of one record and of the payload (bincode, standard config), plus
//! the checksummed single-value file format used by the small metadata files.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;

/// Size of the record header (`len` + `crc`).
pub(crate) const HEADER_LEN: usize = 8;

/// Upper bound on a single payload; anything larger in a header is treated as garbage.
pub(crate) const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// Serialize `value` with bincode (standard config).
pub(crate) fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

/// Deserialize a payload produced by [`encode_payload`]; trailing bytes are an error.
pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Error> {
    let (v, used) = bincode::serde::decode_from_slice(payload, bincode::config::standard())?;
    if used != payload.len() {
        return Err(Error::Corrupt(format!(
            "payload has {} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(v)
}

/// Serialize `value` and frame it as a complete record (header + payload).
pub(crate) fn encode_record<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let payload = encode_payload(value)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    // Payload size is bounded by MAX_PAYLOAD on the read side; refuse to write larger ones.
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_PAYLOAD)
        .ok_or_else(|| Error::Corrupt(format!("record too large: {} bytes", payload.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Result of trying to parse one record from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A complete record with a valid checksum; `total` is header + payload length.
    Ok { payload: &'a [u8], total: usize },
    /// The buffer ends exactly here (clean end of data).
    End,
    /// Incomplete header/payload, absurd length or checksum mismatch.
    Bad(String),
}

/// Parse the record at the start of `buf`.
pub(crate) fn parse_record(buf: &[u8]) -> Parsed<'_> {
    if buf.is_empty() {
        return Parsed::End;
    }
    if buf.len() < HEADER_LEN {
        return Parsed::Bad(format!("short header: {} bytes", buf.len()));
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Parsed::Bad(format!("invalid record length {len}"));
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Parsed::Bad(format!(
            "short payload: want {len}, have {}",
            buf.len() - HEADER_LEN
        ));
    };
    if crc32fast::hash(payload) != crc {
        return Parsed::Bad("checksum mismatch".to_string());
    }
    Parsed::Ok {
        payload,
        total: HEADER_LEN + len,
    }
}

/// Encode a value as the whole content of a small metadata file (one framed record).
pub(crate) fn encode_file<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    encode_record(value)
}

/// Decode a file written by [`encode_file`]; any damage or trailing data is an error.
pub(crate) fn decode_file<T: DeserializeOwned>(buf: &[u8]) -> Result<T, Error> {
    match parse_record(buf) {
        Parsed::Ok { payload, total } if total == buf.len() => decode_payload(payload),
        Parsed::Ok { .. } => Err(Error::Corrupt("trailing bytes in file".to_string())),
        Parsed::End => Err(Error::Corrupt("empty file".to_string())),
        Parsed::Bad(why) => Err(Error::Corrupt(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let rec = encode_record(&(7u64, "hello".to_string())).expect("encode");
        let Parsed::Ok { payload, total } = parse_record(&rec) else {
            panic!("should parse");
        };
        assert_eq!(total, rec.len());
        let v: (u64, String) = decode_payload(payload).expect("decode");
        assert_eq!(v, (7, "hello".to_string()));

        assert_eq!(parse_record(&[]), Parsed::End);
        assert!(matches!(parse_record(&rec[..5]), Parsed::Bad(_)));
        assert!(matches!(
            parse_record(&rec[..rec.len() - 1]),
            Parsed::Bad(_)
        ));
        let mut flipped = rec.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(parse_record(&flipped), Parsed::Bad(_)));
        assert!(matches!(parse_record(&[0u8; 16]), Parsed::Bad(_)));
    }
}
