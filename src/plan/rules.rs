//! Per-file rules: headers, compression and ignores by pattern. The first
//! rule whose pattern matches a file decides; the variables (CACHE_CONTROL,
//! ...) fill what it leaves out. `config::rules_file` reads them from YAML.

use crate::model::{Encoding, ObjectSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Gzip,
    Br,
    None,
}

impl Compress {
    /// The Content-Encoding the compressed object is served with.
    pub fn encoding(self) -> Option<Encoding> {
        match self {
            Compress::Gzip => Some(Encoding::Gzip),
            Compress::Br => Some(Encoding::Br),
            Compress::None => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    glob: globset::GlobMatcher,
    /// Whether the pattern names a path (has a `/`) or only a file name.
    by_path: bool,
    pub headers: ObjectSettings,
    pub compress: Option<Compress>,
    pub ignore: bool,
}

impl Rule {
    /// A pattern without `/` matches the file name at any depth (`*.html`);
    /// one with `/` matches the whole path, where `*` stays within a folder
    /// and `**` crosses folders (`assets/**`).
    pub fn new(
        pattern: &str,
        headers: ObjectSettings,
        compress: Option<Compress>,
        ignore: bool,
    ) -> Result<Rule, globset::Error> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()?
            .compile_matcher();
        Ok(Rule {
            glob,
            by_path: pattern.contains('/'),
            headers,
            compress,
            ignore,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// The first rule that matches a path relative to LOCAL_PATH.
    pub fn first_match(&self, relative: &str) -> Option<&Rule> {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.0
            .iter()
            .find(|r| r.glob.is_match(if r.by_path { relative } else { name }))
    }

    /// Whether the first matching rule says `ignore`.
    pub fn ignores(&self, relative: &str) -> bool {
        self.first_match(relative).is_some_and(|r| r.ignore)
    }

    pub fn extend(&mut self, other: Rules) {
        self.0.extend(other.0);
    }
}

/// The settings for one file: the rule's headers where it sets them, the
/// variables' elsewhere.
pub fn merge(base: &ObjectSettings, rule: Option<&Rule>) -> ObjectSettings {
    let Some(rule) = rule else {
        return base.clone();
    };
    let h = &rule.headers;
    let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let mut metadata = base.metadata.clone();
    metadata.extend(h.metadata.clone());
    ObjectSettings {
        cache_control: pick(&h.cache_control, &base.cache_control),
        content_type: pick(&h.content_type, &base.content_type),
        content_encoding: pick(&h.content_encoding, &base.content_encoding),
        content_language: pick(&h.content_language, &base.content_language),
        content_disposition: pick(&h.content_disposition, &base.content_disposition),
        expires: h.expires.or(base.expires),
        metadata,
        ..base.clone()
    }
}
