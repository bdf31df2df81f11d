//! Stage 3a: the local folder, as the list of objects it should become.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The full object key: prefix, `/`, the NFC-normalised relative path.
    pub key: String,
    /// The path relative to LOCAL_PATH with `/` separators, as filters see it.
    pub relative: String,
    /// The bytes to upload: the file itself, or a compressed copy of it.
    pub path: PathBuf,
    pub size: u64,
    /// The Content-Encoding of `path`'s bytes when they are compressed.
    pub encoding: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "symbolic link loop at {0}: a link points back to one of its own parent folders; remove it or exclude it"
    )]
    Loop(PathBuf),
    #[error("{0} has a name that is not valid UTF-8, which S3 keys must be: rename it")]
    NotUtf8(PathBuf),
    #[error(
        "{first} and {second} map to the same key {key:?} (their names differ only in Unicode normalisation): keep one"
    )]
    SameKey {
        first: PathBuf,
        second: PathBuf,
        key: String,
    },
}

/// Joins a prefix and a relative path with exactly one `/`.
pub fn join_key(prefix: &str, relative: &str) -> String {
    if prefix.is_empty() {
        relative.to_string()
    } else {
        format!("{prefix}/{relative}")
    }
}

/// Every regular file under `root`, hidden files included, sorted by key.
/// Symbolic links are followed, or with `follow_links` off skipped entirely
/// (as `aws s3 sync --no-follow-symlinks` does).
pub fn scan(root: &Path, prefix: &str, follow_links: bool) -> Result<Vec<LocalFile>, ScanError> {
    let mut files: BTreeMap<String, LocalFile> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(follow_links)
        .min_depth(1)
    {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            if e.loop_ancestor().is_some() {
                return ScanError::Loop(path);
            }
            let source = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("unreadable entry"));
            ScanError::Io { path, source }
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        let mut parts = Vec::new();
        for part in rel.components() {
            let part = part
                .as_os_str()
                .to_str()
                .ok_or_else(|| ScanError::NotUtf8(entry.path().to_path_buf()))?;
            parts.push(part.nfc().collect::<String>());
        }
        let relative = parts.join("/");
        let key = join_key(prefix, &relative);
        let size = entry
            .metadata()
            .map_err(|e| ScanError::Io {
                path: entry.path().to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("no metadata")),
            })?
            .len();
        let file = LocalFile {
            key: key.clone(),
            relative,
            path: entry.path().to_path_buf(),
            size,
            encoding: None,
        };
        if let Some(previous) = files.insert(key.clone(), file) {
            return Err(ScanError::SameKey {
                first: previous.path,
                second: entry.path().to_path_buf(),
                key,
            });
        }
    }
    Ok(files.into_values().collect())
}

/// The ETag S3 gives this file's content: the MD5 of the whole file, or with
/// `part_size`, the MD5 of the parts' MD5s followed by `-<part count>`.
/// Reads the file in bounded chunks, never whole.
pub fn etag(path: &Path, part_size: Option<u64>) -> std::io::Result<String> {
    use md5::{Digest, Md5};
    use std::io::Read;

    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let limit = part_size.unwrap_or(u64::MAX);
    let mut parts = Md5::new();
    let mut count = 0u64;
    loop {
        let mut part = Md5::new();
        let mut in_part = 0u64;
        while in_part < limit {
            let want = buf
                .len()
                .min((limit - in_part).try_into().unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            part.update(&buf[..n]);
            in_part += n as u64;
        }
        let digest = part.finalize();
        if part_size.is_none() {
            return Ok(hex(&digest));
        }
        if in_part == 0 && count > 0 {
            break;
        }
        parts.update(digest);
        count += 1;
        if in_part < limit {
            break;
        }
    }
    Ok(format!("{}-{count}", hex(&parts.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn keys_are_relative_nfc_and_prefixed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(".well-known/sub")).unwrap();
        fs::write(root.join(".well-known/sub/a.txt"), "a").unwrap();
        fs::write(root.join("Cafe\u{301}.txt"), "bb").unwrap();
        fs::write(root.join("index.html"), "").unwrap();
        let files = scan(root, "site", true).unwrap();
        let keys: Vec<_> = files.iter().map(|f| (f.key.as_str(), f.size)).collect();
        assert_eq!(
            keys,
            [
                ("site/.well-known/sub/a.txt", 1),
                ("site/Caf\u{e9}.txt", 2),
                ("site/index.html", 0)
            ]
        );
        assert_eq!(
            scan(root, "", true).unwrap()[0].key,
            ".well-known/sub/a.txt"
        );
    }

    #[test]
    fn symlinks_are_followed_and_loops_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("real")).unwrap();
        fs::write(root.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("linked")).unwrap();
        let keys: Vec<_> = scan(root, "", true)
            .unwrap()
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(keys, ["linked/f", "real/f"]);
        let unfollowed: Vec<_> = scan(root, "", false)
            .unwrap()
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(unfollowed, ["real/f"]);
        std::os::unix::fs::symlink(root, root.join("real/back")).unwrap();
        assert!(matches!(scan(root, "", true), Err(ScanError::Loop(_))));
    }

    #[test]
    fn etags_single_and_multipart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"a").unwrap();
        assert_eq!(
            etag(&path, None).unwrap(),
            "0cc175b9c0f1b6a831c399e269772661"
        );
        // Parts "ab", "cd", "e": md5(md5("ab") ++ md5("cd") ++ md5("e")).
        fs::write(&path, b"abcde").unwrap();
        let expected = {
            use md5::{Digest, Md5};
            let mut all = Vec::new();
            for part in [&b"ab"[..], b"cd", b"e"] {
                all.extend_from_slice(&Md5::digest(part));
            }
            format!("{}-3", hex(&Md5::digest(&all)))
        };
        assert_eq!(etag(&path, Some(2)).unwrap(), expected);
        // An exact multiple does not produce an empty trailing part.
        fs::write(&path, b"abcd").unwrap();
        assert!(etag(&path, Some(2)).unwrap().ends_with("-2"));
        fs::write(&path, b"").unwrap();
        assert_eq!(
            etag(&path, None).unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn two_normalisation_forms_of_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Caf\u{e9}"), "1").unwrap();
        fs::write(dir.path().join("Cafe\u{301}"), "2").unwrap();
        let err = scan(dir.path(), "", true).unwrap_err();
        assert!(err.to_string().contains("map to the same key"), "{err}");
    }
}
