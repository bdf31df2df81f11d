//! `PRECOMPRESSED`: a build's own `app.js.br` or `app.js.gz` is what the key
//! `app.js` serves, with its Content-Encoding. A pure rewrite of which
//! bytes each key gets, from the names and sizes the scan already has.
//!
//! Every file also keeps its own key: a sibling stays published under its
//! own name and type (`application/gzip` for `.gz`), since sites link to
//! such files directly (`sitemap.xml.gz` named in `robots.txt`). Filters
//! and `ignore` rules apply afterwards, to keys: excluding `*.gz` keeps the
//! siblings off their own names while they still serve their originals.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::model::{Encoding, LocalFile};

/// Sibling suffixes and the Content-Encoding each stands for, preferred
/// first: brotli compresses text smaller than gzip.
pub const SIBLINGS: [(&str, Encoding); 2] = [(".br", Encoding::Br), (".gz", Encoding::Gzip)];

/// `files` with each file that has a sibling (`x.br`, else `x.gz`, next to
/// `x`) served from it: the sibling's path and size, and its
/// Content-Encoding. The siblings themselves, and files without one, are
/// returned as they are. `files` must carry the sizes of their own paths
/// (the scan's output), so nothing is read here.
pub fn serve_siblings(mut files: Vec<LocalFile>) -> Vec<LocalFile> {
    // From the files as scanned: `a.gz` served by `a.gz.br` still gives `a`
    // its own bytes.
    let scanned: HashMap<String, (PathBuf, u64)> = files
        .iter()
        .map(|f| (f.relative().to_string(), (f.path(), f.size)))
        .collect();
    for file in &mut files {
        let sibling = SIBLINGS.iter().find_map(|(suffix, encoding)| {
            let (path, size) = scanned.get(&format!("{}{suffix}", file.relative()))?;
            Some((path, *size, *encoding))
        });
        if let Some((path, size, encoding)) = sibling {
            file.set_path(path.clone());
            file.size = size;
            file.encoding = Some(encoding);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Prefix;
    use std::path::PathBuf;

    fn file(relative: &str, size: u64) -> LocalFile {
        LocalFile::new(
            PathBuf::from("/build").into(),
            &Prefix::new("site"),
            relative,
            size,
        )
    }

    #[test]
    fn siblings_serve_their_original_and_keep_their_own_key() {
        let files = vec![
            file("app.js", 100),
            file("app.js.br", 20),
            file("app.js.gz", 30),
            file("sitemap.xml", 50),
            file("sitemap.xml.gz", 10),
            file("data.gz", 5),
            file("a.gz", 40),
            file("a.gz.br", 4),
        ];
        let view: Vec<(String, String, u64, Option<Encoding>)> = serve_siblings(files)
            .into_iter()
            .map(|f| {
                let path = f
                    .path()
                    .strip_prefix("/build")
                    .unwrap()
                    .display()
                    .to_string();
                (f.key.to_string(), path, f.size, f.encoding)
            })
            .collect();
        let row = |key: &str, path: &str, size, encoding| {
            (format!("site/{key}"), path.to_string(), size, encoding)
        };
        assert_eq!(
            view,
            [
                row("app.js", "app.js.br", 20, Some(Encoding::Br)),
                row("app.js.br", "app.js.br", 20, None),
                row("app.js.gz", "app.js.gz", 30, None),
                row("sitemap.xml", "sitemap.xml.gz", 10, Some(Encoding::Gzip)),
                row("sitemap.xml.gz", "sitemap.xml.gz", 10, None),
                row("data.gz", "data.gz", 5, None),
                row("a.gz", "a.gz.br", 4, Some(Encoding::Br)),
                row("a.gz.br", "a.gz.br", 4, None),
            ]
        );
    }
}
