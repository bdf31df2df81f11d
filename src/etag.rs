//! How S3 computes an ETag, in one place: when this pipe uploads in parts,
//! with which part size, what a local file's ETag would be, and which hash a
//! comparison with a remote ETag needs.

use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};

use crate::model::{ETag, ETagKind};

const MIB: u64 = 1024 * 1024;

/// Files at or above this size are uploaded in parts. 8 MiB is also
/// aws-cli's `multipart_threshold` and `multipart_chunksize`, so objects it
/// uploaded compare without a HeadObject.
pub const MULTIPART_THRESHOLD: u64 = 8 * MIB;
/// S3 allows at most this many parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// Whether this pipe uploads `size` bytes in parts.
pub fn in_parts(size: u64) -> bool {
    size >= MULTIPART_THRESHOLD
}

/// The part size this pipe uses for `size` bytes: 8 MiB, grown in whole MiB
/// only when 10,000 parts would not hold the file.
pub fn part_size(size: u64) -> u64 {
    let min = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    min.max(MULTIPART_THRESHOLD)
}

/// How a local file must be hashed to compare with an ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashNeed {
    /// The MD5 of the whole file.
    Md5,
    /// The multipart ETag with this part size.
    Parts(u64),
    /// The multipart ETag with the part size of the remote object's first
    /// part, which only a HeadObject (partNumber=1) can tell.
    PartsOfRemote,
}

/// A local file's content hash, as S3 would compute its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub etag: ETag,
    /// The part size of a multipart ETag; `None` for a plain MD5.
    pub part_size: Option<std::num::NonZeroU64>,
}

impl Hashed {
    /// Whether this hash is the one `need` asks for.
    pub fn answers(&self, need: HashNeed) -> bool {
        match need {
            HashNeed::Md5 => self.part_size.is_none(),
            HashNeed::Parts(size) => self.part_size.map(u64::from) == Some(size),
            HashNeed::PartsOfRemote => false,
        }
    }
}

/// The hash that compares a local file of `size` bytes with `remote`;
/// `None` when the ETag is not a content hash at all.
pub fn need(size: u64, remote: &ETag) -> Option<HashNeed> {
    match remote.kind() {
        ETagKind::Md5 => Some(HashNeed::Md5),
        // Our own part size gives the remote's part count: most likely it
        // is ours (or aws-cli's); anything else needs the remote's.
        ETagKind::Multipart { parts } if size.div_ceil(part_size(size)) == parts => {
            Some(HashNeed::Parts(part_size(size)))
        }
        ETagKind::Multipart { .. } => Some(HashNeed::PartsOfRemote),
        ETagKind::Opaque => None,
    }
}

/// How S3 computed the ETag of this pipe's own upload of `size` bytes.
pub fn as_uploaded(size: u64) -> HashNeed {
    if in_parts(size) {
        HashNeed::Parts(part_size(size))
    } else {
        HashNeed::Md5
    }
}

/// The ETag S3 gives this file's content: the MD5 of the whole file, or with
/// `part_size`, the MD5 of the parts' MD5s followed by `-<part count>`.
/// Reads the file in 256 KiB chunks, never whole.
pub fn of_file(path: &Path, part_size: Option<u64>) -> std::io::Result<ETag> {
    let mut file = std::fs::File::open(path)?;
    // No larger than the file: a buffer is zeroed when allocated, and a
    // 256 KiB one for every small file cost more writes than the hashing
    // read (0.5 GB for 2,000 files). One per thread instead kept a buffer
    // in every thread of tokio's blocking pool: 4 MB more at the peak.
    let len = file.metadata()?.len().clamp(1, READ_CHUNK);
    let mut buf = vec![0u8; usize::try_from(len).expect("at most READ_CHUNK")];
    hash_parts(&mut file, &mut buf, part_size)
}

/// Bytes read at a time to hash a file.
const READ_CHUNK: u64 = 256 * 1024;

fn hash_parts(
    file: &mut std::fs::File,
    buf: &mut [u8],
    part_size: Option<u64>,
) -> std::io::Result<ETag> {
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
            return Ok(ETag::new(&hex::encode(digest)));
        }
        // An exact multiple of the part size has no empty trailing part.
        if in_part == 0 && count > 0 {
            break;
        }
        parts.update(digest);
        count += 1;
        if in_part < limit {
            break;
        }
    }
    Ok(ETag::new(&format!(
        "{}-{count}",
        hex::encode(parts.finalize())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const A: &str = "0cc175b9c0f1b6a831c399e269772661";

    #[test]
    fn part_size_grows_only_past_ten_thousand_parts() {
        assert_eq!(part_size(0), 8 * MIB);
        assert_eq!(part_size(80_000 * MIB), 8 * MIB);
        assert_eq!(part_size(80_000 * MIB + 1), 9 * MIB);
        let five_tib = 5 * 1024 * 1024 * MIB;
        assert!(five_tib.div_ceil(part_size(five_tib)) <= MAX_PARTS);
        assert!(!in_parts(MULTIPART_THRESHOLD - 1) && in_parts(MULTIPART_THRESHOLD));
    }

    #[test]
    fn the_hash_a_comparison_needs() {
        let twenty = 20 * MIB;
        assert_eq!(need(1, &ETag::new(A)), Some(HashNeed::Md5));
        assert_eq!(
            need(twenty, &ETag::new(&format!("{A}-3"))),
            Some(HashNeed::Parts(8 * MIB))
        );
        assert_eq!(
            need(twenty, &ETag::new(&format!("{A}-4"))),
            Some(HashNeed::PartsOfRemote)
        );
        assert_eq!(need(1, &ETag::new("not-a-hash")), None);
        assert_eq!(as_uploaded(twenty), HashNeed::Parts(8 * MIB));
        assert_eq!(as_uploaded(1), HashNeed::Md5);
    }

    #[test]
    fn etags_single_and_multipart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"a").unwrap();
        assert_eq!(of_file(&path, None).unwrap(), ETag::new(A));
        // Parts "ab", "cd", "e": md5(md5("ab") ++ md5("cd") ++ md5("e")).
        fs::write(&path, b"abcde").unwrap();
        let mut all = Vec::new();
        for part in [&b"ab"[..], b"cd", b"e"] {
            all.extend_from_slice(&Md5::digest(part));
        }
        let expected = format!("{}-3", hex::encode(Md5::digest(&all)));
        assert_eq!(of_file(&path, Some(2)).unwrap(), ETag::new(&expected));
        fs::write(&path, b"abcd").unwrap();
        assert!(of_file(&path, Some(2)).unwrap().to_string().ends_with("-2"));
        fs::write(&path, b"").unwrap();
        assert_eq!(
            of_file(&path, None).unwrap().to_string(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
