//! The local folder, as the list of objects it should become, and every
//! path in it that cannot become one. The scan never stops at the first
//! problem: it gathers them all, so one run can name them all.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use unicode_normalization::UnicodeNormalization;

use crate::model::{LocalFile, MAX_KEY_BYTES, Prefix, ScanCause, ScanProblem};

/// What the scan found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Every regular file that can be uploaded, sorted by key.
    pub files: Vec<LocalFile>,
    /// Every path that cannot, sorted by path; whether one stops the deploy
    /// depends on the filters (`plan::scope`).
    pub problems: Vec<ScanProblem>,
    /// Symbolic links left alone because `follow_links` is off.
    pub links_skipped: usize,
}

/// Every regular file under `root`, hidden files included. Symbolic links
/// are followed, or with `follow_links` off skipped entirely, dangling ones
/// too (as `aws s3 sync --no-follow-symlinks` does). Each file is opened
/// and its first byte read, so a file that cannot be read is found here,
/// before any write, rather than halfway through the upload.
pub fn scan(root: &Path, prefix: &Prefix, follow_links: bool) -> Scanned {
    let mut out = Scanned::default();
    let mut problem = |relative: String, cause| out.problems.push(ScanProblem { relative, cause });
    let mut files = Vec::new();
    let mut links_skipped = 0;
    let shared_root = Arc::new(root.to_path_buf());
    let mut walk = walkdir::WalkDir::new(root)
        .follow_links(follow_links)
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().unwrap_or(root);
                problem(relative_of(root, path), walk_cause(path, &e));
                continue;
            }
        };
        let file_type = entry.file_type();
        let relative = relative_of(root, entry.path());
        // A bad folder name is reported once, not for every file under it.
        let mut refuse = |cause| {
            problem(relative.clone(), cause);
            if file_type.is_dir() {
                walk.skip_current_dir();
            }
        };
        if entry
            .path()
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .is_none()
        {
            refuse(ScanCause::NotUtf8);
            continue;
        }
        if let Some(c) = relative.chars().find(char::is_ascii_control) {
            refuse(ScanCause::ControlCharacter(c));
            continue;
        }
        // The key's length, before the key is made (files only).
        let key_len = prefix.join_len(&relative);
        if file_type.is_dir() {
            // The shortest key under it: `<folder>/x`.
            let shortest = key_len + 2;
            if shortest > MAX_KEY_BYTES {
                refuse(ScanCause::KeyTooLong {
                    bytes: shortest,
                    folder: true,
                });
            }
            continue;
        }
        if file_type.is_symlink() {
            // Only seen with follow_links off: left alone, as documented.
            links_skipped += 1;
            continue;
        }
        if !file_type.is_file() {
            refuse(ScanCause::NotAFile(special_kind(&file_type)));
            continue;
        }
        if key_len > MAX_KEY_BYTES {
            refuse(ScanCause::KeyTooLong {
                bytes: key_len,
                folder: false,
            });
            continue;
        }
        if prefix.is_root() && relative.trim().is_empty() {
            refuse(ScanCause::BlankKey);
            continue;
        }
        let size = match readable(entry.path()) {
            Ok(size) => size,
            Err(e) => {
                refuse(ScanCause::UnreadableFile(in_words(&e)));
                continue;
            }
        };
        let mut file = LocalFile::new(shared_root.clone(), prefix, &relative, size);
        // A name on disk that is not NFC: the key is NFC, the bytes are not
        // at the NFC path.
        file.set_path(entry.path().to_path_buf());
        files.push(file);
    }
    files.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.path().cmp(&b.path())));
    out.files = without_same_keys(root, &files, &mut out.problems);
    out.problems.sort_by(|a, b| a.relative.cmp(&b.relative));
    out.links_skipped = links_skipped;
    out
}

/// Files whose names differ only in Unicode normalisation (`Café` typed on
/// macOS and on Linux) map to one key, and only one could be published:
/// each such group becomes a problem instead. Filters see both names alike
/// (NFC), so they include or exclude the group as one.
fn without_same_keys(
    root: &Path,
    files: &[LocalFile],
    problems: &mut Vec<ScanProblem>,
) -> Vec<LocalFile> {
    let mut kept = Vec::with_capacity(files.len());
    for group in files.chunk_by(|a, b| a.key == b.key) {
        if let [file] = group {
            kept.push(file.clone());
            continue;
        }
        let names = group
            .iter()
            .map(|f| {
                let path = f.path();
                escaped(path.strip_prefix(root).unwrap_or(&path))
            })
            .collect();
        problems.push(ScanProblem {
            relative: group[0].relative().to_string(),
            cause: ScanCause::SameKey { names },
        });
    }
    kept
}

/// The file's size, once its first byte has been read: `open` finds
/// missing permissions, `read` files that refuse it (a write-only kernel
/// file; an I/O error). Following links, as the upload will.
fn readable(path: &Path) -> std::io::Result<u64> {
    let mut file = fs::File::open(path)?;
    // 0 bytes (an empty file) or 1: either way it reads.
    let _bytes = file.read(&mut [0u8; 1])?;
    Ok(file.metadata()?.len())
}

/// Why the walk could not go on at `path`.
fn walk_cause(path: &Path, e: &walkdir::Error) -> ScanCause {
    if e.loop_ancestor().is_some() {
        return ScanCause::LinkLoop {
            target: link_target(path),
        };
    }
    let message = e.io_error().map_or_else(|| e.to_string(), in_words);
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        // Following the link failed: its target is missing (or a file where
        // a folder should be), or links point at each other.
        // ELOOP (40 on Linux, the only system the pipe runs on) has no
        // stable ErrorKind.
        let io = e.io_error();
        if io.and_then(std::io::Error::raw_os_error) == Some(40) {
            return ScanCause::LinkLoop {
                target: link_target(path),
            };
        }
        if io.is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            )
        }) {
            return ScanCause::BrokenLink {
                target: link_target(path),
            };
        }
    }
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        ScanCause::UnreadableFolder(message)
    } else {
        ScanCause::UnreadableFile(message)
    }
}

/// The system's message without its number: `Permission denied`.
fn in_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" (os error ") {
        Some((words, _)) => words.to_string(),
        None => text,
    }
}

fn link_target(path: &Path) -> String {
    fs::read_link(path).map_or_else(|e| format!("? ({e})"), |t| escaped(&t))
}

fn special_kind(file_type: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// `path` relative to `root`, `/`-separated and NFC; `.` for the root.
fn relative_of(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    if relative.as_os_str().is_empty() {
        return ".".to_string();
    }
    escaped(relative).nfc().collect()
}

/// A path as text: bytes that are not UTF-8 written `\xNN`.
fn escaped(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn keys(scanned: &Scanned) -> Vec<&str> {
        scanned.files.iter().map(|f| f.key.as_str()).collect()
    }

    fn lines(scanned: &Scanned) -> Vec<String> {
        scanned.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn keys_are_relative_nfc_and_prefixed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(".well-known/sub")).unwrap();
        fs::write(root.join(".well-known/sub/a.txt"), "a").unwrap();
        fs::write(root.join("Cafe\u{301}.txt"), "bb").unwrap();
        fs::write(root.join("index.html"), "").unwrap();
        let scanned = scan(root, &Prefix::new("site"), true);
        assert!(scanned.problems.is_empty(), "{:?}", scanned.problems);
        let files: Vec<_> = scanned
            .files
            .iter()
            .map(|f| (f.key.as_str(), f.relative(), f.size))
            .collect();
        assert_eq!(
            files,
            [
                ("site/.well-known/sub/a.txt", ".well-known/sub/a.txt", 1),
                ("site/Caf\u{e9}.txt", "Caf\u{e9}.txt", 2),
                ("site/index.html", "index.html", 0)
            ]
        );
        // The NFD name on disk is where the NFC key's bytes are.
        let paths: Vec<_> = scanned.files.iter().map(LocalFile::path).collect();
        assert_eq!(paths[1], root.join("Cafe\u{301}.txt"));
        assert_eq!(paths[2], root.join("index.html"));
        assert_eq!(
            keys(&scan(root, &Prefix::default(), true))[0],
            ".well-known/sub/a.txt"
        );
    }

    #[test]
    fn symlinks_are_followed_or_skipped_and_loops_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("real")).unwrap();
        fs::write(root.join("real/f"), "x").unwrap();
        symlink(root.join("real"), root.join("linked")).unwrap();
        symlink("real/f", root.join("f-link")).unwrap();
        let followed = scan(root, &Prefix::default(), true);
        assert_eq!(keys(&followed), ["f-link", "linked/f", "real/f"]);
        assert_eq!(followed.links_skipped, 0);
        let unfollowed = scan(root, &Prefix::default(), false);
        assert_eq!(keys(&unfollowed), ["real/f"]);
        assert_eq!(unfollowed.links_skipped, 2);

        symlink("..", root.join("real/back")).unwrap();
        let looped = scan(root, &Prefix::default(), true);
        assert_eq!(
            lines(&looped),
            [
                "symbolic link loop: linked/back → ..",
                "symbolic link loop: real/back → .."
            ]
        );
        assert_eq!(keys(&looped), ["f-link", "linked/f", "real/f"]);
        // Not followed, a loop is one more link left alone.
        let unfollowed = scan(root, &Prefix::default(), false);
        assert!(unfollowed.problems.is_empty());
        assert_eq!(unfollowed.links_skipped, 3);
    }

    /// Every kind the scan finds, in one folder, in one scan.
    #[test]
    fn every_problem_is_gathered_with_its_path_and_cause() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("docs")).unwrap();
        fs::write(root.join("docs/ok.html"), "ok").unwrap();
        symlink("../missing", root.join("docs/old")).unwrap();
        symlink("/nonexistent/target", root.join("gone")).unwrap();
        symlink("ping", root.join("pong")).unwrap();
        symlink("pong", root.join("ping")).unwrap();
        // Unreadable even for root: a write-only kernel file, on which
        // read() fails with EINVAL whatever the caller's privileges.
        symlink("/proc/self/clear_refs", root.join("secret")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap();
        assert!(fifo.success());
        fs::write(root.join(OsStr::from_bytes(b"caf\xe9.txt")), "latin-1").unwrap();
        fs::create_dir(root.join(OsStr::from_bytes(b"bad\xff"))).unwrap();
        fs::write(root.join(OsStr::from_bytes(b"bad\xff/inner.txt")), "x").unwrap();
        fs::write(root.join("tab\there.txt"), "x").unwrap();
        let long = "d".repeat(250);
        let deep = root.join(format!("{long}/{long}/{long}/{long}"));
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("x".repeat(30)), "x").unwrap();
        fs::create_dir(deep.join("e".repeat(30))).unwrap();
        fs::write(deep.join("e".repeat(30)).join("f"), "x").unwrap();
        fs::write(root.join("Caf\u{e9}.md"), "1").unwrap();
        fs::write(root.join("Cafe\u{301}.md"), "2").unwrap();

        let scanned = scan(root, &Prefix::new("site"), true);
        assert_eq!(keys(&scanned), ["site/docs/ok.html"]);
        let mut got = lines(&scanned);
        got.sort();
        // EINVAL for root, EACCES (mode 0200) for anyone else.
        let why = in_words(&fs::read("/proc/self/clear_refs").unwrap_err());
        let secret = format!("unreadable file: secret ({why})");
        let mut expected = vec![
            "broken symbolic link: docs/old → ../missing".to_string(),
            "broken symbolic link: gone → /nonexistent/target".into(),
            format!("key longer than 1,024 bytes: {long}/{long}/{long}/{long}/{} (1039 bytes with the prefix)", "x".repeat(30)),
            format!("key longer than 1,024 bytes: {long}/{long}/{long}/{long}/{}/ (a folder: its keys have 1041 bytes or more with the prefix)", "e".repeat(30)),
            "name S3 cannot take: tab\\u{9}here.txt (control character U+0009)".into(),
            "name not valid UTF-8: bad\\xFF (S3 keys are UTF-8)".into(),
            "name not valid UTF-8: caf\\xE9.txt (S3 keys are UTF-8)".into(),
            "not a regular file: pipe (a FIFO)".into(),
            "symbolic link loop: ping → pong".into(),
            "symbolic link loop: pong → ping".into(),
            secret,
            "two names for one key: Caf\u{e9}.md (Cafe\\u{301}.md, Caf\\u{e9}.md: the names differ only in Unicode normalisation)".into(),
        ];
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_key_of_whitespace_alone_is_refused_only_at_the_bucket_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [" ", "\u{a0}", "\u{3000}", "x ", " y"] {
            fs::write(root.join(name), "v").unwrap();
        }
        let at_root = scan(root, &Prefix::default(), true);
        assert_eq!(keys(&at_root), [" y", "x "]);
        let mut got = lines(&at_root);
        got.sort();
        assert_eq!(
            got,
            [
                "name S3 cannot take: \" \" (U+0020: a key of whitespace alone, which the AWS SDK does not send)",
                "name S3 cannot take: \"\u{a0}\" (U+00A0: a key of whitespace alone, which the AWS SDK does not send)",
                "name S3 cannot take: \"\u{3000}\" (U+3000: a key of whitespace alone, which the AWS SDK does not send)",
            ]
        );
        // Under a prefix the key is `site/ `: sent like any other.
        let under = scan(root, &Prefix::new("site"), true);
        assert_eq!(under.files.len(), 5);
        assert!(under.problems.is_empty());
    }

    #[test]
    fn an_unreadable_folder_is_reported_where_permissions_apply() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("private")).unwrap();
        fs::write(root.join("private/a"), "a").unwrap();
        fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o000)).unwrap();
        // Root (CI) reads a mode 000 folder anyway: then there is nothing
        // unreadable to report, and the files are found.
        let privileged = fs::read_dir(root.join("private")).is_ok();
        let scanned = scan(root, &Prefix::default(), true);
        fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o755)).unwrap();
        if privileged {
            assert_eq!(keys(&scanned), ["private/a"]);
            assert!(scanned.problems.is_empty());
        } else {
            assert!(scanned.files.is_empty());
            assert_eq!(
                lines(&scanned),
                ["unreadable folder: private (Permission denied)"]
            );
        }
    }
}
