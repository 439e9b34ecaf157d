//! How column data is packed into a log row. A binary buffer of at least 4 KiB is
//! transformed and compressed with zstd, and kept that way
//! when that is smaller; a smaller one is stored as it came.
//!
//! The transform depends on the buffer's element width, when the caller knows it (the
//! dtype of the array the buffer holds):
//!
//! - 8 or 4 bytes (float64; int32, uint32, float32): the cheaper to store of the byte
//!   shuffle (byte k of every element together, so the slowly changing high bytes sit
//!   side by side) and the zig-zag delta (each element's difference from the one
//!   before, of its bits taken as an integer, with wrapping arithmetic) followed by the
//!   shuffle, judged by compressing both on a sample of 16 KiB in 4 stripes spread over
//!   the buffer (on the whole of a buffer up to 32 KiB). Both are lossless for any bits,
//!   floats included.
//! - unknown, or another width: the 8-byte shuffle when the length is a multiple of 8,
//!   else zstd alone (as before the delta codecs).
//!
//! Every stored buffer names its codec in one byte; the ids 0, 1 and 2 predate the delta
//! codecs, and stores holding them read as before.

mod transform;

use bytes::Bytes;

use transform::{delta_shuffle, shuffle, unshuffle, unshuffle_undelta};

/// Buffers shorter than this are stored as they came.
const MIN_COMPRESSED: usize = 4096;
/// zstd's level: fast (hundreds of MB/s per core), and most of the gain.
const LEVEL: i32 = 1;
/// The most a stored buffer may inflate to (a corrupted length is refused, not trusted).
const MAX_RAW: usize = 1 << 34;
/// How much of a buffer [`choose`] compresses both ways to pick its transform: this
/// many bytes in [`STRIPES`] stripes spread over the buffer. A buffer of at most twice
/// this is compressed whole both ways.
const SAMPLE: usize = 16 << 10;
/// The stripes of a sample.
const STRIPES: usize = 4;

/// Stored as it came.
const RAW: u8 = 0;
/// 8-byte shuffle, zstd.
const SHUFFLE8_ZSTD: u8 = 1;
/// zstd alone.
const ZSTD: u8 = 2;
/// 4-byte shuffle, zstd.
const SHUFFLE4_ZSTD: u8 = 3;
/// Zig-zag delta of 8-byte words, 8-byte shuffle, zstd.
const DELTA8_ZSTD: u8 = 4;
/// Zig-zag delta of 4-byte words, 4-byte shuffle, zstd.
const DELTA4_ZSTD: u8 = 5;

fn compress(data: &[u8]) -> Option<Vec<u8>> {
    zstd::bulk::compress(data, LEVEL).ok()
}

/// A sample of `data` (whole `W`-byte elements): [`STRIPES`] stripes spread evenly.
fn sample<const W: usize>(data: &[u8]) -> Vec<u8> {
    let stripe = SAMPLE / STRIPES / W * W;
    let step = data.len() / STRIPES / W * W;
    (0..STRIPES)
        .flat_map(|j| data.iter().skip(j * step).take(stripe))
        .copied()
        .collect()
}

/// The better of the plain shuffle (`plain`) and the delta shuffle (`delta`) for `data`
/// of `W`-byte elements, compressed: both are tried on a sample (or on the whole of a
/// small buffer, whose result is then kept), the smaller wins, a tie going to the plain
/// shuffle.
fn choose<const W: usize>(data: &[u8], plain: u8, delta: u8) -> Option<(u8, Vec<u8>)> {
    if data.len() <= 2 * SAMPLE {
        let a = compress(&shuffle::<W>(data))?;
        let b = compress(&delta_shuffle::<W>(data))?;
        return Some(if b.len() < a.len() {
            (delta, b)
        } else {
            (plain, a)
        });
    }
    let probe = sample::<W>(data);
    let a = compress(&shuffle::<W>(&probe))?.len();
    let b = compress(&delta_shuffle::<W>(&probe))?.len();
    Some(if b < a {
        (delta, compress(&delta_shuffle::<W>(data))?)
    } else {
        (plain, compress(&shuffle::<W>(data))?)
    })
}

/// One buffer as stored: its codec and bytes. `width` is the size of its elements in
/// bytes, 0 when unknown.
fn encode(data: &[u8], width: usize) -> (u8, Vec<u8>) {
    if data.len() < MIN_COMPRESSED {
        return (RAW, data.to_vec());
    }
    let whole = |w: usize| data.len().is_multiple_of(w);
    let packed = match width {
        8 if whole(8) => choose::<8>(data, SHUFFLE8_ZSTD, DELTA8_ZSTD),
        4 if whole(4) => choose::<4>(data, SHUFFLE4_ZSTD, DELTA4_ZSTD),
        _ if whole(8) => compress(&shuffle::<8>(data)).map(|p| (SHUFFLE8_ZSTD, p)),
        _ => compress(data).map(|p| (ZSTD, p)),
    };
    match packed {
        Some((codec, packed)) if packed.len() + 8 < data.len() => (codec, packed),
        _ => (RAW, data.to_vec()),
    }
}

/// zstd's output for `stored`, which must be one frame that says it holds `raw_len`
/// bytes (so a corrupted length is refused before anything is allocated for it).
fn decompress(stored: &[u8], raw_len: usize) -> Option<Vec<u8>> {
    if raw_len > MAX_RAW {
        return None;
    }
    let claimed = zstd::zstd_safe::get_frame_content_size(stored).ok()??;
    if usize::try_from(claimed).ok()? != raw_len {
        return None;
    }
    let out = zstd::bulk::decompress(stored, raw_len).ok()?;
    (out.len() == raw_len).then_some(out)
}

/// The inverse of a transform: whole elements in, as many bytes out.
type Undo = fn(&[u8]) -> Vec<u8>;

fn decode(codec: u8, stored: &[u8], raw_len: usize) -> Option<Vec<u8>> {
    let (width, undo): (usize, Undo) = match codec {
        RAW => return (stored.len() == raw_len).then(|| stored.to_vec()),
        ZSTD => return decompress(stored, raw_len),
        SHUFFLE8_ZSTD => (8, unshuffle::<8>),
        SHUFFLE4_ZSTD => (4, unshuffle::<4>),
        DELTA8_ZSTD => (8, unshuffle_undelta::<8>),
        DELTA4_ZSTD => (4, unshuffle_undelta::<4>),
        _ => return None,
    };
    if !raw_len.is_multiple_of(width) {
        return None;
    }
    Some(undo(&decompress(stored, raw_len)?))
}

/// Packs buffers, each as `u32 id length, id, u8 codec, u64 raw length, u64 stored
/// length, stored bytes`, all little-endian. `element_sizes[i]` is the size in bytes of
/// the elements of `buffers[i]` (0, or missing, when unknown).
pub fn pack_buffers(buffers: &[(String, Bytes)], element_sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (id, data)) in buffers.iter().enumerate() {
        let width = element_sizes.get(i).copied().unwrap_or(0);
        let (codec, stored) = encode(data, width);
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

    /// A seeded xorshift64*: bounded, reproducible pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn floats(values: impl Iterator<Item = f64>) -> Bytes {
        values
            .flat_map(f64::to_le_bytes)
            .collect::<Vec<u8>>()
            .into()
    }

    /// The codec each buffer of a packed blob was stored with.
    fn codecs(blob: &[u8]) -> Vec<u8> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < blob.len() {
            let id_len = u32::from_le_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
            at += 4 + id_len;
            out.push(blob[at]);
            let stored = u64::from_le_bytes(blob[at + 9..at + 17].try_into().unwrap());
            at += 17 + stored as usize;
        }
        out
    }

    /// A random series of `n` elements of `width` bytes, of one of several shapes:
    /// noise, a random walk, a constant step, repeats, timestamps with jitter, small
    /// integers, uniform floats in [0, 1), or values that jump between sign and exponent.
    fn series(rng: &mut Rng, width: usize, n: usize) -> Vec<u8> {
        let shape = rng.below(8);
        let mut walk = rng.unit();
        let mut out = Vec::with_capacity(n * width);
        for i in 0..n {
            let word: u64 = match shape {
                0 => rng.next(),
                1 => {
                    walk += rng.unit() - 0.5;
                    if width == 4 {
                        u64::from((walk as f32).to_bits())
                    } else {
                        walk.to_bits()
                    }
                }
                2 => (i as u64).wrapping_mul(7).wrapping_sub(1000),
                3 => 42,
                4 => (1.7e12 + 1000.0 * i as f64 + rng.below(21) as f64).to_bits(),
                5 => rng.below(5).wrapping_sub(2),
                6 if width == 4 => u64::from((rng.unit() as f32).to_bits()),
                6 => rng.unit().to_bits(),
                _ => (f64::from_bits(rng.next()) * if i % 2 == 0 { 1.0 } else { -1.0 }).to_bits(),
            };
            out.extend_from_slice(&word.to_le_bytes()[..width.clamp(1, 8)]);
        }
        out
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
        for sizes in [
            vec![],
            vec![8, 8, 8, 8, 8],
            vec![4, 4, 4, 4, 4],
            vec![0, 1, 2, 3, 5],
        ] {
            let packed = pack_buffers(&buffers, &sizes);
            assert_eq!(unpack_buffers(&packed), Some(buffers.clone()), "{sizes:?}");
            let raw: usize = buffers.iter().map(|(_, b)| b.len()).sum();
            assert!(packed.len() < raw / 2, "{} packed of {raw}", packed.len());
            assert_eq!(unpack_buffers(&packed[..packed.len() - 1]), None);
        }
        assert_eq!(unpack_buffers(&[]), Some(Vec::new()));
    }

    /// 400 random buffers of random shapes, widths and lengths (up to 40k elements, some
    /// not whole elements): each comes back bit for bit, and every codec is used.
    #[test]
    fn random_arrays_round_trip() {
        let mut rng = Rng(0x5EED);
        let mut used = std::collections::BTreeSet::new();
        for case in 0..400 {
            let width = [0, 1, 2, 4, 8][rng.below(5) as usize];
            let n = match rng.below(3) {
                0 => rng.below(600),
                1 => rng.below(5_000),
                _ => rng.below(40_000),
            } as usize;
            let mut data = series(&mut rng, width, n);
            if rng.below(8) == 0 {
                data.push(1);
            }
            let buffers = vec![(format!("b{case}"), Bytes::from(data))];
            let packed = pack_buffers(&buffers, &[width]);
            used.extend(codecs(&packed));
            assert_eq!(
                unpack_buffers(&packed),
                Some(buffers),
                "case {case}, width {width}, {n} elements"
            );
        }
        let all = [
            RAW,
            SHUFFLE8_ZSTD,
            ZSTD,
            SHUFFLE4_ZSTD,
            DELTA8_ZSTD,
            DELTA4_ZSTD,
        ];
        assert_eq!(used.into_iter().collect::<Vec<_>>(), all);
    }

    #[test]
    fn the_delta_codec_is_chosen_where_it_pays_and_only_there() {
        let mut rng = Rng(9);
        let stamps =
            floats((0..100_000).map(|i| 1.7e12 + 1000.0 * f64::from(i) + (rng.below(101) as f64)));
        let noise = floats((0..100_000).map(|_| rng.unit()));
        let readings: Vec<u8> = (0..100_000i32)
            .scan(0i32, |w, _| {
                *w += rng.below(5) as i32 - 2;
                Some(*w)
            })
            .flat_map(i32::to_le_bytes)
            .collect();
        let readings = Bytes::from(readings);
        let pack = |b: &Bytes, w: usize| pack_buffers(&[("0".to_owned(), b.clone())], &[w]);
        assert_eq!(codecs(&pack(&stamps, 8)), [DELTA8_ZSTD]);
        assert_eq!(codecs(&pack(&noise, 8)), [SHUFFLE8_ZSTD]);
        assert_eq!(codecs(&pack(&readings, 4)), [DELTA4_ZSTD]);
        // Unknown width: as before the delta codecs.
        assert_eq!(codecs(&pack(&stamps, 0)), [SHUFFLE8_ZSTD]);
        assert!(
            pack(&stamps, 8).len() * 4 < pack(&stamps, 0).len() * 3,
            "jittered timestamps: {} delta-encoded, {} shuffled",
            pack(&stamps, 8).len(),
            pack(&stamps, 0).len()
        );
        assert!(pack(&readings, 4).len() < pack(&readings, 0).len());
    }

    #[test]
    fn a_lying_length_is_refused() {
        for width in [0, 4, 8] {
            let buffers = [("s".to_owned(), floats((0..10_000).map(f64::from)))];
            let packed = pack_buffers(&buffers, &[width]);
            // The raw length sits after the id (4 + 1 bytes) and the codec byte.
            for (at, flip) in [(6, 0x01), (6, 0x08), (13, 0x80)] {
                let mut bad = packed.clone();
                bad[at] ^= flip;
                assert_eq!(unpack_buffers(&bad), None, "width {width}, byte {at}");
            }
        }
    }

    /// Every truncation of a packed blob decodes to an error or to the buffers before the
    /// cut, and every one-byte change to an error or to some buffers (zstd frames carry no checksum: the log row's CRC-32 is what
    /// catches a changed byte), never to a panic; an unknown codec id is refused.
    #[test]
    fn corrupted_blobs_give_an_error_not_a_panic() {
        let stamps = floats((0..2_000).map(|i| 1.7e12 + 1000.0 * f64::from(i)));
        let ints: Vec<u8> = (0..3_000i32).flat_map(|i| (i * i).to_le_bytes()).collect();
        let buffers = [
            ("t".to_owned(), stamps),
            ("i".to_owned(), Bytes::from(ints)),
        ];
        let packed = pack_buffers(&buffers, &[8, 4]);
        assert_eq!(codecs(&packed), [DELTA8_ZSTD, DELTA4_ZSTD]);
        for len in 0..packed.len() {
            // Cut at a buffer's end, a blob is the buffers before the cut.
            let whole = match unpack_buffers(&packed[..len]) {
                None => true,
                Some(out) => out.len() < buffers.len() && buffers.starts_with(&out),
            };
            assert!(whole, "cut at {len}");
        }
        for at in 0..packed.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut bad = packed.clone();
                bad[at] ^= flip;
                if let Some(out) = unpack_buffers(&bad) {
                    let raw: usize = out.iter().map(|(_, b)| b.len()).sum();
                    assert!(raw <= 1 << 20, "byte {at}: {raw} bytes out");
                }
            }
        }
        let mut unknown = packed.clone();
        unknown[5] = 6;
        assert_eq!(unpack_buffers(&unknown), None);
    }

    #[test]
    fn a_raw_length_past_the_limit_is_refused_before_anything_is_allocated() {
        let frame = compress(&[0u8; 8192]).unwrap();
        assert_eq!(decompress(&frame, MAX_RAW + 8), None);
        assert_eq!(decompress(&frame, 1 << 33), None, "not what the frame says");
        assert_eq!(decompress(&frame, 8192).map(|v| v.len()), Some(8192));
        assert_eq!(decode(DELTA8_ZSTD, &frame, 8190), None, "not whole words");
        assert_eq!(decode(RAW, b"1234", 5), None);
    }
}
