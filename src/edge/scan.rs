//! The local folder, as the list of objects it should become.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::model::{Key, LocalFile, Prefix};

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
        key: Key,
    },
}

/// Every regular file under `root`, hidden files included, sorted by key.
/// Symbolic links are followed, or with `follow_links` off skipped entirely
/// (as `aws s3 sync --no-follow-symlinks` does).
pub fn scan(root: &Path, prefix: &Prefix, follow_links: bool) -> Result<Vec<LocalFile>, ScanError> {
    let mut files: BTreeMap<Key, LocalFile> = BTreeMap::new();
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
        let key = prefix.join(&relative);
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
        let files = scan(root, &Prefix::new("site"), true).unwrap();
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
            scan(root, &Prefix::default(), true).unwrap()[0]
                .key
                .as_str(),
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
        let keys: Vec<_> = scan(root, &Prefix::default(), true)
            .unwrap()
            .into_iter()
            .map(|f| f.key.to_string())
            .collect();
        assert_eq!(keys, ["linked/f", "real/f"]);
        let unfollowed: Vec<_> = scan(root, &Prefix::default(), false)
            .unwrap()
            .into_iter()
            .map(|f| f.key.to_string())
            .collect();
        assert_eq!(unfollowed, ["real/f"]);
        std::os::unix::fs::symlink(root, root.join("real/back")).unwrap();
        assert!(matches!(
            scan(root, &Prefix::default(), true),
            Err(ScanError::Loop(_))
        ));
    }

    #[test]
    fn two_normalisation_forms_of_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Caf\u{e9}"), "1").unwrap();
        fs::write(dir.path().join("Cafe\u{301}"), "2").unwrap();
        let err = scan(dir.path(), &Prefix::default(), true).unwrap_err();
        assert!(err.to_string().contains("map to the same key"), "{err}");
    }
}
