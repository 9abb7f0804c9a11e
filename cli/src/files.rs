//! The program's own files: JSON results and configs in and out, and output folders. Every
//! write is atomic (`nets::io::write_atomic`).

use crate::error::{Result, RunError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Reads a JSON file into `T`, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = nets::io::read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(RunError::ToJson)?;
    nets::io::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Creates the folder `dir` and its parents (nothing if it exists).
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// `path` made absolute (against the working directory), without touching the file system
/// beyond that; symbolic links are resolved where the path exists, so that two spellings of
/// one folder compare equal.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `path` relative to the folder `base` (both made [`absolute`]): `../data/x.npy`. Paths on
/// another root (another drive) stay absolute.
pub fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (path, base) = (absolute(path), absolute(base));
    let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    if p.first() != b.first() {
        return path;
    }
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `path` as recorded in a config file in `base`, made usable from the working directory:
/// relative paths are relative to `base`.
pub fn resolve(path: &Path, base: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// `s` as one word for a POSIX shell: as it is when it is made of safe characters only, else
/// in single quotes (a quote inside becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=+,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A path that must be written into JSON: an error naming it when it is not valid UTF-8.
pub fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| RunError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_relative_to_a_folder() {
        let r = |p: &str, b: &str| relative_to(Path::new(p), Path::new(b));
        assert_eq!(r("/a/b/x.npy", "/a/c/out"), Path::new("../../b/x.npy"));
        assert_eq!(r("/a/out/model", "/a/out"), Path::new("model"));
        assert_eq!(r("/a/out", "/a/out"), Path::new("."));
        assert_eq!(
            resolve(Path::new("../x"), Path::new("/a/b")),
            Path::new("/a/b/../x")
        );
        assert_eq!(resolve(Path::new("/x"), Path::new("/a/b")), Path::new("/x"));
    }

    #[test]
    fn words_quoted_for_the_shell() {
        assert_eq!(shell_quote("out/tms/config.json"), "out/tms/config.json");
        assert_eq!(shell_quote("my out/config.json"), "'my out/config.json'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }
}
