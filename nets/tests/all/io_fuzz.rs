//! The loaders on hostile bytes: random bytes, mutations of valid files, and safetensors
//! headers built from random (often lying) entries must give `Ok` or `Err`, never a panic, a
//! hang or an absurd allocation. A panic fails the test; nothing catches it.
//!
//! `tests/fuzz_corpus/` keeps inputs that once misbehaved and hand-made nasty ones; each must be
//! refused with an error. Add any input that ever crashes a loader there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nets::io::{
    load_inputs, load_model, npy_from_bytes, read_architecture, safetensors_from_bytes, write_npy,
    write_safetensors,
};
use proptest::prelude::*;
use tensor::Tensor;

const MLP_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/models/mlp.toml");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_corpus");

/// A fresh, empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("io_fuzz")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.25 - 1.0).collect()
}

/// The weights of `examples/models/mlp.toml` as written by `write_safetensors`.
fn valid_weights() -> Vec<u8> {
    let dir = scratch("valid");
    let shapes: [(&str, Vec<usize>); 4] = [
        ("0.weight", vec![16, 8]),
        ("0.bias", vec![16]),
        ("2.weight", vec![4, 16]),
        ("2.bias", vec![4]),
    ];
    let tensors: Vec<(&str, Tensor<f32>)> = shapes
        .iter()
        .map(|(name, shape)| {
            (
                *name,
                Tensor::from_vec(shape, values(shape.iter().product())),
            )
        })
        .collect();
    let path = dir.join("mlp.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(&path, tensors.iter().map(|(n, t)| (*n, t)), &metadata).unwrap();
    std::fs::read(&path).unwrap()
}

/// A `[5, 3]` array as written by `write_npy`.
fn valid_npy() -> Vec<u8> {
    let path = scratch("valid_npy").join("x.npy");
    write_npy(&path, &Tensor::from_vec(&[5, 3], values(15))).unwrap();
    std::fs::read(&path).unwrap()
}

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// Replaces the `nth` run of ASCII digits by `value`, to make the header lie about sizes.
    Number {
        nth: usize,
        value: u64,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Edit::FlipBit { at, bit }),
        (at, any::<u8>()).prop_map(|(at, byte)| Edit::SetByte { at, byte }),
        at.prop_map(|at| Edit::Truncate { at }),
        (at, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (at, 1usize..32).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), number()).prop_map(|(nth, value)| Edit::Number { nth, value }),
    ]
}

/// Small numbers, multiples of 4, and the extremes: `u64::MAX / k` makes a tensor of a
/// `k`-byte dtype claim almost all of the address space.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..64,
        2 => (0u64..512).prop_map(|n| 4 * n),
        3 => prop::sample::select(vec![u64::MAX, u64::MAX / 2, u64::MAX / 4, u64::MAX / 8]),
        1 => Just(u64::MAX / 4 + 1),
        1 => Just(1 << 32),
        1 => any::<u64>(),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match edit {
        Edit::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Edit::SetByte { at, byte } if len > 0 => bytes[at % len] = *byte,
        Edit::Truncate { at } => bytes.truncate(at % (len + 1)),
        Edit::Insert { at, bytes: new } => {
            let at = at % (len + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Edit::Delete { at, len: n } if len > 0 => {
            let at = at % len;
            bytes.drain(at..(at + n).min(len));
        }
        Edit::Number { nth, value } => replace_number(bytes, *nth, *value),
        _ => {}
    }
}

fn replace_number(bytes: &mut Vec<u8>, nth: usize, value: u64) {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            runs.push(start..i);
        }
        i += 1;
    }
    if !runs.is_empty() {
        let run = runs[nth % runs.len()].clone();
        bytes.splice(run, value.to_string().into_bytes());
    }
}

/// Every safetensors entry point on `bytes`: in memory, and through a file as a model's
/// weights and as inputs.
fn load_safetensors_everywhere(bytes: &[u8], dir: &Path) {
    let path = dir.join("case.safetensors");
    let _ = safetensors_from_bytes::<f32>(&path, bytes);
    let _ = safetensors_from_bytes::<f64>(&path, bytes);
    std::fs::write(&path, bytes).unwrap();
    let _ = load_model(Path::new(MLP_TOML), &path);
    let _ = load_inputs(&path);
}

fn load_npy_everywhere(bytes: &[u8], dir: &Path) {
    let path = dir.join("case.npy");
    let _ = npy_from_bytes::<f32>(&path, bytes);
    let _ = npy_from_bytes::<f64>(&path, bytes);
    std::fs::write(&path, bytes).unwrap();
    let _ = load_inputs(&path);
}

/// A safetensors header entry: name, dtype, shape, and either lying offsets or none (then the
/// offsets follow from the previous entry and the shape, as a valid file has them).
type Entry = (&'static str, &'static str, Vec<u64>, Option<(u64, u64)>);

fn entry() -> impl Strategy<Value = Entry> {
    let name = prop::sample::select(vec!["0.weight", "0.bias", "2.weight", "2.bias", "x"]);
    let dtype = prop::sample::select(vec!["F32", "F64", "F16", "BF16", "I64", "U8", "BOOL"]);
    let shape = prop_oneof![1 => Just(vec![]), 4 => prop::collection::vec(number(), 1..3)];
    let lie = prop::option::weighted(0.2, (number(), number()));
    (name, dtype, shape, lie)
}

/// The JSON header of `entries`; consistent offsets are computed in wrapping arithmetic, so a
/// huge shape gives huge (but contiguous) offsets.
fn header(entries: &[Entry], with_metadata: bool) -> String {
    let mut end = 0u64;
    let mut fields = Vec::new();
    for (name, dtype, shape, lie) in entries {
        let size = match *dtype {
            "F64" | "I64" => 8,
            "F32" => 4,
            "F16" | "BF16" => 2,
            _ => 1,
        };
        let bytes = shape.iter().fold(size, |acc: u64, &n| acc.wrapping_mul(n));
        let (start, stop) = lie.unwrap_or((end, end.wrapping_add(bytes)));
        end = stop;
        fields.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{start},{stop}]}}"#
        ));
    }
    if with_metadata {
        fields.push(r#""__metadata__":{"format":"pt"}"#.to_string());
    }
    format!("{{{}}}", fields.join(","))
}

/// 256 cases, a few seconds; set `PROPTEST_CASES` for a longer run.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = scratch("random");
        load_safetensors_everywhere(&bytes, &dir);
        load_npy_everywhere(&bytes, &dir);
        // Behind a valid prefix, so the random part reaches the header parsers.
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend(&bytes);
        load_npy_everywhere(&npy, &dir);
        let mut st = (bytes.len() as u64).to_le_bytes().to_vec();
        st.extend(&bytes);
        load_safetensors_everywhere(&st, &dir);
    }

    #[test]
    fn mutated_weights_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let mut bytes = valid_weights();
        for e in &edits {
            apply(&mut bytes, e);
        }
        load_safetensors_everywhere(&bytes, &scratch("mutated_weights"));
    }

    #[test]
    fn mutated_npy_never_panics(edits in prop::collection::vec(edit(), 1..6)) {
        let mut bytes = valid_npy();
        for e in &edits {
            apply(&mut bytes, e);
        }
        load_npy_everywhere(&bytes, &scratch("mutated_npy"));
    }

    #[test]
    fn lying_headers_never_panic(
        entries in prop::collection::vec(entry(), 0..5),
        with_metadata in any::<bool>(),
        data_len in 0usize..600,
    ) {
        let header = header(&entries, with_metadata);
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(vec![0x3f; data_len]);
        load_safetensors_everywhere(&bytes, &scratch("lying_headers"));
    }

    #[test]
    fn mutated_architectures_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let mut bytes = std::fs::read(MLP_TOML).unwrap();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let dir = scratch("mutated_architectures");
        for ext in ["toml", "json"] {
            let path = dir.join(format!("arch.{ext}"));
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_architecture(&path);
        }
    }
}

/// Every file of the corpus is refused by the loaders of its kind, with an error naming it.
#[test]
fn corpus_files_are_refused() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut checked = 0;
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let results: Vec<Result<(), String>> = match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => vec![
                load_model(Path::new(MLP_TOML), &path)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                load_inputs(&path).map(drop).map_err(|e| e.to_string()),
            ],
            Some("npy") => vec![load_inputs(&path).map(drop).map_err(|e| e.to_string())],
            Some("toml" | "json") => {
                vec![read_architecture(&path)
                    .map(drop)
                    .map_err(|e| e.to_string())]
            }
            _ => continue,
        };
        for result in results {
            let msg = result.expect_err(&name);
            assert!(msg.contains(&name), "{name}: {msg}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} corpus files");
}
