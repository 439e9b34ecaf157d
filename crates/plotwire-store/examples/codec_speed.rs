//! The codec's own cost: MB/s of raw column data packed and unpacked
//! (`plotwire_store::codec`) on one thread, for 100k-point float64 and int32 buffers
//! (a 100k-row batch), with the element width unknown (the 8-byte shuffle, as before
//! delta encoding) and told (the shuffle or the delta, whichever a sample favours). No
//! SQLite, no fsync: only the transforms and zstd.
//!
//! `cargo run --release -p plotwire-store --example codec_speed`

use std::time::{Duration, Instant};

use bytes::Bytes;
use plotwire_store::codec::{pack_buffers, unpack_buffers};

const POINTS: usize = 100_000;
/// How long each figure is measured for.
const SPAN: Duration = Duration::from_millis(400);

/// A small seeded generator (xorshift64*), uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The series: name, element width, little-endian elements.
fn series() -> Vec<(&'static str, usize, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut walk = 0.0;
    let mut int_walk = 0i32;
    let floats = |f: &mut dyn FnMut(f64) -> f64| -> Vec<u8> {
        (0..POINTS)
            .flat_map(|i| f(i as f64).to_le_bytes())
            .collect()
    };
    vec![
        ("constant step", 8, floats(&mut |t| t)),
        (
            "random walk",
            8,
            floats(&mut |_| {
                walk += rng.next() - 0.5;
                walk
            }),
        ),
        (
            "timestamps +- 50 ms jitter",
            8,
            floats(&mut |t| 1.796e12 + 1000.0 * t + (rng.next() * 101.0).floor()),
        ),
        ("white noise", 8, floats(&mut |_| rng.next())),
        (
            "int32 readings",
            4,
            (0..POINTS)
                .flat_map(|_| {
                    int_walk += (rng.next() * 5.0) as i32 - 2;
                    int_walk.to_le_bytes()
                })
                .collect(),
        ),
    ]
}

/// MB/s of `bytes` per run of `f`, run for [`SPAN`].
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < SPAN || runs == 0 {
        f();
        runs += 1;
    }
    bytes as f64 * f64::from(runs) / start.elapsed().as_secs_f64() / 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("codec MB/s of raw data, one thread, {POINTS}-point buffers:");
    println!(
        "  {:28} {:>22} {:>22}",
        "series", "width unknown: pack/unpack", "width told: pack/unpack"
    );
    for (name, width, data) in series() {
        let buffers = [("0".to_owned(), Bytes::from(data))];
        let raw = buffers[0].1.len();
        let mut line = format!("  {name:28}");
        for sizes in [vec![], vec![width]] {
            let packed = pack_buffers(&buffers, &sizes);
            if unpack_buffers(&packed).as_deref() != Some(&buffers[..]) {
                return Err(format!("{name}: the round trip changed the data").into());
            }
            let pack = rate(raw, || {
                std::hint::black_box(pack_buffers(&buffers, &sizes));
            });
            let unpack = rate(raw, || {
                std::hint::black_box(unpack_buffers(&packed));
            });
            line.push_str(&format!(" {pack:>12.0} / {unpack:>6.0}"));
        }
        println!("{line}");
    }
    Ok(())
}
