//! Hashing a 1 GiB file in the page cache on one thread: read only, BLAKE3 and xxh3.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use jobpool_bench::summary::{median, spread};

use crate::graph::SplitMix;
use crate::{verdict, Args};

/// The read block of the hashing loop, as in src/cache/files.rs.
const BLOCK: usize = 256 * 1024;
/// Target.
const TARGET_HASH_GBS: f64 = 1.0;

/// Reads `path` in [`BLOCK`]s, handing each to `update`; returns the bytes read.
fn read_blocks(path: &Path, mut update: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut file = fs::File::open(path)?;
    let mut buffer = vec![0u8; BLOCK];
    let mut total = 0;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                update(&buffer[..n]);
                total += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(total)
}

pub(crate) fn hash_part(args: &Args, root: &Path) {
    let path = root.join("big");
    let size = args.hash_mib << 20;
    println!();
    println!(
        "== hashing a {} MiB file in the page cache, one thread, blocks of {} KiB, GB/s \
         (10^9 bytes), median [min-max] over {} rounds",
        args.hash_mib,
        BLOCK / 1024,
        args.rounds
    );
    println!("  CPU: {}", cpu_summary());
    {
        let mut file = io::BufWriter::new(fs::File::create(&path).expect("create the file"));
        let mut block = vec![0u8; 1 << 20];
        let mut rng = SplitMix(42);
        rng.fill(&mut block);
        for i in 0..args.hash_mib {
            block[..8].copy_from_slice(&(i as u64).to_le_bytes());
            file.write_all(&block).expect("write the file");
        }
        file.flush().expect("write the file");
    }
    // Into the page cache.
    let read = read_blocks(&path, |b| {
        std::hint::black_box(b);
    })
    .expect("read the file");
    assert_eq!(read, size as u64);

    type Contender = (&'static str, fn(&Path) -> u64);
    let contenders: [Contender; 3] = [
        ("a read only", |p| {
            let mut x = 0u64;
            read_blocks(p, |b| x ^= u64::from(b[0])).unwrap();
            x
        }),
        ("b BLAKE3", |p| {
            let mut hasher = blake3::Hasher::new();
            read_blocks(p, |b| {
                hasher.update(b);
            })
            .unwrap();
            u64::from(hasher.finalize().as_bytes()[0])
        }),
        ("c xxh3-64", |p| {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            read_blocks(p, |b| hasher.update(b)).unwrap();
            hasher.digest()
        }),
    ];
    let mut gbs: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for round in 0..args.rounds {
        for k in 0..contenders.len() {
            let i = (round + k) % contenders.len();
            let t = Instant::now();
            std::hint::black_box(contenders[i].1(&path));
            gbs[i].push(size as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
    }
    for ((name, _), v) in contenders.iter().zip(&gbs) {
        println!("  {name:<12} {:>22} GB/s", spread(v, 2));
    }
    let blake3 = median(&gbs[1]);
    println!(
        "  target BLAKE3 >= {TARGET_HASH_GBS:.1} GB/s: {} ({blake3:.2}); xxh3/BLAKE3 per round: {}",
        verdict(blake3 >= TARGET_HASH_GBS),
        spread(
            &gbs[2]
                .iter()
                .zip(&gbs[1])
                .map(|(x, b)| x / b)
                .collect::<Vec<_>>(),
            2
        )
    );
    let _ = fs::remove_file(&path);
}

fn cpu_summary() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let simd: Vec<&str> = ["sse4_1", "avx2", "avx512f", "avx512vl"]
        .into_iter()
        .filter(|f| flags.contains(f))
        .collect();
    format!("{model}; {}", simd.join(" "))
}
