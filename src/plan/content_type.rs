//! Content-Type by file extension: the same answer on every OS (no
//! /etc/mime.types), with the web's current choices where registries lag.

/// The types a static site depends on, pinned so a browser gets what it
/// expects (`text/javascript` for modules, `application/wasm` for streaming
/// compilation, `charset=utf-8` on text).
const WEB: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("json", "application/json; charset=utf-8"),
    ("map", "application/json; charset=utf-8"),
    ("webmanifest", "application/manifest+json; charset=utf-8"),
    ("jsonld", "application/ld+json; charset=utf-8"),
    ("xml", "application/xml; charset=utf-8"),
    ("rss", "application/rss+xml; charset=utf-8"),
    ("atom", "application/atom+xml; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("ics", "text/calendar; charset=utf-8"),
    ("svg", "image/svg+xml; charset=utf-8"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("bmp", "image/bmp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("ogg", "audio/ogg"),
    ("mp3", "audio/mpeg"),
    ("wav", "audio/wav"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("ts", "video/mp2t"),
];

pub const DEFAULT: &str = "application/octet-stream";

/// The Content-Type for a key, by its extension (case-insensitive).
pub fn content_type(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let Some((_, ext)) = name.rsplit_once('.') else {
        return DEFAULT.to_string();
    };
    let ext = ext.to_ascii_lowercase();
    if let Some((_, ty)) = WEB.iter().find(|(e, _)| *e == ext) {
        return ty.to_string();
    }
    // Beyond the web's own types, mime_guess's compiled-in table; text types
    // get a charset because browsers otherwise guess one.
    match mime_guess::from_ext(&ext).first_raw() {
        Some(ty) if ty.starts_with("text/") => format!("{ty}; charset=utf-8"),
        Some(ty) => ty.to_string(),
        None => DEFAULT.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_types() {
        for (key, ty) in [
            ("index.html", "text/html; charset=utf-8"),
            ("a/B.CSS", "text/css; charset=utf-8"),
            ("app.mjs", "text/javascript; charset=utf-8"),
            ("app.js.map", "application/json; charset=utf-8"),
            ("logo.svg", "image/svg+xml; charset=utf-8"),
            ("f.woff2", "font/woff2"),
            ("m.wasm", "application/wasm"),
            ("p.avif", "image/avif"),
            (
                "site.webmanifest",
                "application/manifest+json; charset=utf-8",
            ),
            // A precompressed sibling under its own name: brotli has no
            // registered media type.
            ("sitemap.xml.gz", "application/gzip"),
            ("app.js.br", DEFAULT),
            ("LICENSE", DEFAULT),
            (".well-known/apple-app-site-association", DEFAULT),
            ("x.unknownext", DEFAULT),
            ("dir.v2/file", DEFAULT),
        ] {
            assert_eq!(content_type(key), ty, "{key}");
        }
    }

    #[test]
    fn other_types_come_from_the_registry_table() {
        assert_eq!(content_type("clip.mov"), "video/quicktime");
        assert_eq!(content_type("page.vtt"), "text/vtt; charset=utf-8");
    }
}
