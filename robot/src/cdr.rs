//! CDR encoding of ROS 2 messages, as DDS and the zenoh–ROS 2 bridge carry
//! them: a 4-byte encapsulation header (representation identifier, then two
//! option bytes) followed by the plain CDR body, aligned from the body's
//! start.

use byteorder::{BigEndian, LittleEndian};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Encapsulation header of little-endian plain CDR (`CDR_LE`).
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];
/// Representation identifier of big-endian plain CDR (`CDR_BE`).
const CDR_BE_ID: [u8; 2] = [0x00, 0x00];

/// Encodes `value` as little-endian CDR with its encapsulation header.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let body =
        cdr_encoding::to_vec::<T, LittleEndian>(value).map_err(|e| Error::Cdr(format!("encoding: {e}")))?;
    let mut bytes = Vec::with_capacity(CDR_LE_HEADER.len() + body.len());
    bytes.extend_from_slice(&CDR_LE_HEADER);
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes a CDR payload (either byte order) with its encapsulation header.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let Some((header, body)) = bytes.split_first_chunk::<4>() else {
        return Err(Error::Cdr(format!(
            "payload of {} bytes is shorter than the 4-byte encapsulation header",
            bytes.len()
        )));
    };
    let decoded = match [header[0], header[1]] {
        [0x00, 0x01] => cdr_encoding::from_bytes::<T, LittleEndian>(body),
        id if id == CDR_BE_ID => cdr_encoding::from_bytes::<T, BigEndian>(body),
        id => {
            return Err(Error::Cdr(format!(
                "representation {:02x}{:02x} is not plain CDR (expected 0001 little-endian or 0000 big-endian)",
                id[0], id[1]
            )));
        }
    };
    decoded
        .map(|(value, _consumed)| value)
        .map_err(|e| Error::Cdr(format!("decoding {} bytes: {e}", bytes.len())))
}
