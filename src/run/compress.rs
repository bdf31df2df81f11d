//! Between the scope and the plan: files served compressed. A `compress`
//! rule compresses a file into a private temporary folder, and the local
//! file then stands for the bytes to upload, so hashing and planning
//! compare exactly what S3 holds. Files a precompressed sibling already
//! serves (`plan::precompressed`) are left as they are.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use crate::model::LocalFile;
use crate::plan::rules::{Compress, Rules};

/// Files ready to plan, and the folder holding compressed copies (removed
/// when this is dropped, after the upload).
pub struct Prepared {
    pub files: Vec<LocalFile>,
    _temp: Option<tempfile::TempDir>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot compress {path}: {source}")]
pub struct CompressError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

pub fn prepare(mut files: Vec<LocalFile>, rules: &Rules) -> Result<Prepared, CompressError> {
    let work: Vec<(usize, Compress)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.encoding.is_none())
        .filter_map(|(i, f)| match rules.first_match(f.relative())?.compress? {
            Compress::None => None,
            codec => Some((i, codec)),
        })
        .collect();
    if work.is_empty() {
        return Ok(Prepared { files, _temp: None });
    }
    let temp = tempfile::Builder::new()
        .prefix("s3-cloudfront-deploy-")
        .tempdir()
        .map_err(|source| CompressError {
            path: std::env::temp_dir(),
            source,
        })?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<Result<(usize, Compress, PathBuf, u64), CompressError>> =
        std::thread::scope(|scope| {
            let chunks: Vec<_> = work.chunks(work.len().div_ceil(workers)).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (files, dir) = (&files, temp.path());
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|&(i, codec)| {
                                let out = dir.join(format!("{i}"));
                                let size = compress_file(&files[i].path(), &out, codec).map_err(
                                    |source| CompressError {
                                        path: files[i].path(),
                                        source,
                                    },
                                )?;
                                Ok((i, codec, out, size))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("compression does not panic"))
                .collect()
        });
    for result in results {
        let (i, codec, path, size) = result?;
        files[i].set_path(path);
        files[i].size = size;
        files[i].encoding = codec.encoding();
    }
    Ok(Prepared {
        files,
        _temp: Some(temp),
    })
}

/// Streams `src` through the codec into `dst`; returns the compressed size.
/// Deterministic: the same input gives the same bytes (gzip without a
/// timestamp or name), so an unchanged file keeps its ETag.
fn compress_file(src: &Path, dst: &Path, codec: Compress) -> io::Result<u64> {
    let mut input = BufReader::new(File::open(src)?);
    let output = BufWriter::new(File::create(dst)?);
    match codec {
        Compress::Gzip => {
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(output, flate2::Compression::best());
            io::copy(&mut input, &mut enc)?;
            enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        }
        Compress::Br => {
            // Quality 11 is brotli's best; window 2^22 bounds its memory to a
            // few MB whatever the file's size.
            let mut enc = brotli::CompressorWriter::new(output, 64 * 1024, 11, 22);
            io::copy(&mut input, &mut enc)?;
            enc.into_inner().into_inner().map_err(|e| e.into_error())?;
        }
        Compress::None => unreachable!("None is filtered out before"),
    }
    Ok(std::fs::metadata(dst)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules_file;
    use crate::edge::scan::scan;
    use crate::model::{Encoding, Prefix};
    use std::io::Read;

    fn site(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    #[test]
    fn compresses_by_rule_deterministically_and_round_trips() {
        let text = "hello world ".repeat(1000);
        let dir = site(&[
            ("a.js", text.as_bytes()),
            ("b.css", text.as_bytes()),
            ("c.png", b"png"),
        ]);
        let rules = rules_file::parse(
            "- match: '*.js'\n  compress: br\n- match: '*.css'\n  compress: gzip\n",
            "RULES",
        )
        .unwrap();
        let once = prepare(scan(dir.path(), &Prefix::default(), true).files, &rules).unwrap();
        let twice = prepare(scan(dir.path(), &Prefix::default(), true).files, &rules).unwrap();
        let (js, css, png) = (&once.files[0], &once.files[1], &once.files[2]);
        assert_eq!(
            (js.encoding, css.encoding, png.encoding),
            (Some(Encoding::Br), Some(Encoding::Gzip), None)
        );
        assert!(js.size < 100 && css.size < 100, "{} {}", js.size, css.size);
        for (a, b) in once.files.iter().zip(&twice.files) {
            assert_eq!(
                std::fs::read(a.path()).unwrap(),
                std::fs::read(b.path()).unwrap()
            );
        }
        let mut out = String::new();
        brotli::Decompressor::new(File::open(js.path()).unwrap(), 4096)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        out.clear();
        flate2::read::GzDecoder::new(File::open(css.path()).unwrap())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        assert_eq!(png.path(), dir.path().join("c.png"));
    }
}
