//! The lossless transforms applied to a buffer of `W`-byte little-endian elements
//! before zstd: the byte shuffle, and the zig-zag delta followed by the shuffle.
//!
//! Each takes whole elements (`data.len()` a multiple of `W`) and returns as many bytes.

/// Element `i`'s value: its `W` little-endian bytes as an integer.
fn word<const W: usize>(element: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..W].copy_from_slice(element);
    u64::from_le_bytes(bytes)
}

/// The bits of a `W`-byte word.
const fn mask<const W: usize>() -> u64 {
    if W >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * W)) - 1
    }
}

/// `value - previous` as a `W`-byte signed number, zig-zagged (0, -1, 1, -2, ... to
/// 0, 1, 2, 3, ...) so that a small step either way has zero high bytes.
fn zigzag<const W: usize>(value: u64, previous: u64) -> u64 {
    let spare = 64 - 8 * W as u32;
    // Sign-extends the W-byte difference to 64 bits.
    let step = ((value.wrapping_sub(previous) << spare) as i64) >> spare;
    ((step << 1) ^ (step >> 63)) as u64 & mask::<W>()
}

/// The inverse of [`zigzag`]: the value after `previous`.
fn unzigzag<const W: usize>(zigzagged: u64, previous: u64) -> u64 {
    let step = (zigzagged >> 1) ^ (zigzagged & 1).wrapping_neg();
    previous.wrapping_add(step) & mask::<W>()
}

/// Byte `k` of every element together: the slowly changing high bytes of a numeric
/// series sit side by side.
pub fn shuffle<const W: usize>(data: &[u8]) -> Vec<u8> {
    let n = data.len() / W;
    let mut out = vec![0u8; n * W];
    for (i, element) in data.chunks_exact(W).enumerate() {
        for (k, byte) in element.iter().enumerate() {
            out[k * n + i] = *byte;
        }
    }
    out
}

/// The inverse of [`shuffle`].
pub fn unshuffle<const W: usize>(data: &[u8]) -> Vec<u8> {
    let n = data.len() / W;
    let mut out = vec![0u8; n * W];
    for (i, element) in out.chunks_exact_mut(W).enumerate() {
        for (k, byte) in element.iter_mut().enumerate() {
            *byte = data[k * n + i];
        }
    }
    out
}

/// Each element replaced by its zig-zagged difference from the one before (the first
/// from 0), as a `W`-byte integer with wrapping arithmetic, then shuffled. An integer
/// counter or an evenly spaced float64 timestamp (its IEEE bit pattern taken as an
/// integer) becomes a run of one small value.
pub fn delta_shuffle<const W: usize>(data: &[u8]) -> Vec<u8> {
    let n = data.len() / W;
    let mut out = vec![0u8; n * W];
    let mut previous = 0u64;
    for (i, element) in data.chunks_exact(W).enumerate() {
        let value = word::<W>(element);
        let z = zigzag::<W>(value, previous);
        previous = value;
        for (k, byte) in z.to_le_bytes().iter().take(W).enumerate() {
            out[k * n + i] = *byte;
        }
    }
    out
}

/// The inverse of [`delta_shuffle`].
pub fn unshuffle_undelta<const W: usize>(data: &[u8]) -> Vec<u8> {
    let n = data.len() / W;
    let mut out = vec![0u8; n * W];
    let mut previous = 0u64;
    for (i, element) in out.chunks_exact_mut(W).enumerate() {
        let mut z = [0u8; 8];
        for (k, byte) in z.iter_mut().take(W).enumerate() {
            *byte = data[k * n + i];
        }
        previous = unzigzag::<W>(u64::from_le_bytes(z), previous);
        element.copy_from_slice(&previous.to_le_bytes()[..W]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift64*: bounded, reproducible pseudo-random words.
    fn words(seed: u64, n: usize) -> impl Iterator<Item = u64> {
        let mut s = seed | 1;
        (0..n).map(move |_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
    }

    #[test]
    fn zigzag_makes_small_steps_small_either_way() {
        assert_eq!(zigzag::<8>(10, 10), 0);
        assert_eq!(zigzag::<8>(9, 10), 1);
        assert_eq!(zigzag::<8>(11, 10), 2);
        assert_eq!(zigzag::<8>(0, u64::MAX), 2, "wraps: MAX + 1 = 0");
        assert_eq!(zigzag::<4>(0xFFFF_FFFF, 0), 1, "-1 as an int32");
        assert_eq!(zigzag::<4>(0, 0xFFFF_FFFF), 2, "+1 across the wrap");
        assert_eq!(zigzag::<4>(0x8000_0000, 0), 0xFFFF_FFFF, "i32::MIN");
        for (a, b) in words(7, 1000).zip(words(8, 1000)) {
            assert_eq!(unzigzag::<8>(zigzag::<8>(a, b), b), a);
            let (a, b) = (a & 0xFFFF_FFFF, b & 0xFFFF_FFFF);
            assert_eq!(unzigzag::<4>(zigzag::<4>(a, b), b), a);
        }
    }

    #[test]
    fn a_constant_step_becomes_one_repeated_value() {
        let data: Vec<u8> = (0..1000u64)
            .flat_map(|i| (5 + 3 * i).to_le_bytes())
            .collect();
        let out = delta_shuffle::<8>(&data);
        // The first element's step is 5 (zig-zag 10), every other one's is 3 (6).
        assert_eq!(out[0], 10);
        assert!(out[1..1000].iter().all(|b| *b == 6));
        assert!(
            out[1000..].iter().all(|b| *b == 0),
            "the high bytes are zero"
        );
    }

    #[test]
    fn every_transform_round_trips() {
        for (seed, n) in [(1, 0), (2, 1), (3, 2), (4, 1000), (5, 4097)] {
            let data: Vec<u8> = words(seed, n).flat_map(u64::to_le_bytes).collect();
            assert_eq!(unshuffle::<8>(&shuffle::<8>(&data)), data);
            assert_eq!(unshuffle::<4>(&shuffle::<4>(&data)), data);
            assert_eq!(unshuffle_undelta::<8>(&delta_shuffle::<8>(&data)), data);
            assert_eq!(unshuffle_undelta::<4>(&delta_shuffle::<4>(&data)), data);
        }
    }
}
