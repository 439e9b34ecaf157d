//! How column data is packed into a log row: each binary buffer is stored as it came
//! or, when that is smaller, byte-shuffled (the k-th byte of every 8-byte value
//! together, so that the slowly changing high bytes of a float64 or int64 series sit
//! side by side) and compressed with zstd. Small buffers are stored as they are.

use bytes::Bytes;

/// Buffers shorter than this are stored as they came.
const MIN_COMPRESSED: usize = 4096;
/// zstd's level: fast (hundreds of MB/s per core), and most of the gain.
const LEVEL: i32 = 1;
/// The most a stored buffer may inflate to (a corrupted length is refused, not trusted).
const MAX_RAW: usize = 1 << 34;

const RAW: u8 = 0;
const SHUFFLE8_ZSTD: u8 = 1;
const ZSTD: u8 = 2;

fn shuffle8(data: &[u8]) -> Vec<u8> {
    let n = data.len() / 8;
    let mut out = vec![0u8; data.len()];
    for (i, value) in data.chunks_exact(8).enumerate() {
        for (k, byte) in value.iter().enumerate() {
            out[k * n + i] = *byte;
        }
    }
    out
}

fn unshuffle8(data: &[u8]) -> Vec<u8> {
    let n = data.len() / 8;
    let mut out = vec![0u8; data.len()];
    for (i, value) in out.chunks_exact_mut(8).enumerate() {
        for (k, byte) in value.iter_mut().enumerate() {
            *byte = data[k * n + i];
        }
    }
    out
}

/// One buffer as stored: its codec and bytes.
fn encode(data: &[u8]) -> (u8, Vec<u8>) {
    if data.len() < MIN_COMPRESSED {
        return (RAW, data.to_vec());
    }
    let (codec, input) = if data.len().is_multiple_of(8) {
        (SHUFFLE8_ZSTD, shuffle8(data))
    } else {
        (ZSTD, data.to_vec())
    };
    match zstd::bulk::compress(&input, LEVEL) {
        Ok(packed) if packed.len() + 8 < data.len() => (codec, packed),
        _ => (RAW, data.to_vec()),
    }
}

fn decode(codec: u8, stored: &[u8], raw_len: usize) -> Option<Vec<u8>> {
    match codec {
        RAW => Some(stored.to_vec()),
        ZSTD | SHUFFLE8_ZSTD if raw_len <= MAX_RAW => {
            let out = zstd::bulk::decompress(stored, raw_len).ok()?;
            if out.len() != raw_len {
                return None;
            }
            Some(if codec == SHUFFLE8_ZSTD {
                unshuffle8(&out)
            } else {
                out
            })
        }
        _ => None,
    }
}

/// Packs buffers, each as `u32 id length, id, u8 codec, u64 raw length, u64 stored
/// length, stored bytes`, all little-endian.
pub fn pack_buffers(buffers: &[(String, Bytes)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, data) in buffers {
        let (codec, stored) = encode(data);
        out.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.push(codec);
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&(stored.len() as u64).to_le_bytes());
        out.extend_from_slice(&stored);
    }
    out
}

fn take<'a>(blob: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(n)?;
    let part = blob.get(*at..end)?;
    *at = end;
    Some(part)
}

fn u64_at(blob: &[u8], at: &mut usize) -> Option<usize> {
    let raw: [u8; 8] = take(blob, at, 8)?.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(raw)).ok()
}

/// The inverse of [`pack_buffers`]; `None` if the blob is not well formed.
pub fn unpack_buffers(blob: &[u8]) -> Option<Vec<(String, Bytes)>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < blob.len() {
        let id_len: [u8; 4] = take(blob, &mut at, 4)?.try_into().ok()?;
        let id_len = usize::try_from(u32::from_le_bytes(id_len)).ok()?;
        let id = std::str::from_utf8(take(blob, &mut at, id_len)?)
            .ok()?
            .to_owned();
        let codec = *take(blob, &mut at, 1)?.first()?;
        let raw_len = u64_at(blob, &mut at)?;
        let stored_len = u64_at(blob, &mut at)?;
        let stored = take(blob, &mut at, stored_len)?;
        out.push((id, Bytes::from(decode(codec, stored, raw_len)?)));
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn floats(values: impl Iterator<Item = f64>) -> Bytes {
        values
            .flat_map(f64::to_le_bytes)
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn buffers_round_trip_whatever_their_codec() {
        let buffers = vec![
            ("small".to_owned(), Bytes::from_static(b"12345678")),
            ("empty".to_owned(), Bytes::new()),
            ("steps".to_owned(), floats((0..10_000).map(f64::from))),
            ("odd".to_owned(), Bytes::from(vec![7u8; 10_001])),
            (
                "noise".to_owned(),
                floats(
                    (0..10_000u64)
                        .map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2)),
                ),
            ),
        ];
        let packed = pack_buffers(&buffers);
        assert_eq!(unpack_buffers(&packed), Some(buffers.clone()));
        let raw: usize = buffers.iter().map(|(_, b)| b.len()).sum();
        assert!(packed.len() < raw / 2, "{} packed of {raw}", packed.len());
        assert_eq!(unpack_buffers(&packed[..packed.len() - 1]), None);
        assert_eq!(unpack_buffers(&[]), Some(Vec::new()));
    }

    #[test]
    fn a_lying_length_is_refused() {
        let mut packed = pack_buffers(&[("s".to_owned(), floats((0..10_000).map(f64::from)))]);
        // The raw length sits after the id (4 + 1 bytes) and the codec byte.
        packed[6] ^= 0x01;
        assert_eq!(unpack_buffers(&packed), None);
    }
}
