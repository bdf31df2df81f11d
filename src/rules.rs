//! Per-file rules: headers, compression and ignores by pattern, from a YAML
//! file and/or the `RULES` variable. The first rule whose pattern matches a
//! file decides; the variables (CACHE_CONTROL, ...) fill what it leaves out.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{ObjectSettings, parse_iso8601};

/// The rules file looked for in the working directory (the clone's root in
/// Bitbucket) when RULES_FILE is not set.
pub const DEFAULT_FILE: &str = ".s3-cloudfront-deploy.yml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Gzip,
    Br,
    None,
}

impl Compress {
    /// The Content-Encoding the compressed object is served with.
    pub fn encoding(self) -> Option<&'static str> {
        match self {
            Compress::Gzip => Some("gzip"),
            Compress::Br => Some("br"),
            Compress::None => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    compress: Option<Compress>,
    #[serde(default)]
    ignore: bool,
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

#[derive(Debug, Clone, Default)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// Parses a YAML list of rules; errors name the source, line and reason.
    pub fn parse(yaml: &str, source: &str) -> Result<Rules, String> {
        let raw: Vec<RawRule> = serde_norway::from_str(yaml).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" line {}", l.line()))
                .unwrap_or_default();
            format!("{source}{at}: {e}")
        })?;
        raw.into_iter()
            .enumerate()
            .map(|(i, r)| rule(r).map_err(|e| format!("{source} rule {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()
            .map(Rules)
    }

    /// The first rule that matches a path relative to LOCAL_PATH. A pattern
    /// without `/` matches the file name at any depth (`*.html`); one with
    /// `/` matches the whole path, where `*` stays within a folder and `**`
    /// crosses folders (`assets/**`).
    pub fn first_match(&self, relative: &str) -> Option<&Rule> {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.0
            .iter()
            .find(|r| r.glob.is_match(if r.by_path { relative } else { name }))
    }

    pub fn extend(&mut self, other: Rules) {
        self.0.extend(other.0);
    }
}

fn rule(raw: RawRule) -> Result<Rule, String> {
    let glob = globset::GlobBuilder::new(&raw.pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("match {:?}: {e}", raw.pattern))?
        .compile_matcher();
    let mut headers = ObjectSettings::default();
    for (name, value) in raw.headers {
        if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(format!("header {name}: the value must be printable ASCII"));
        }
        let lower = name.to_ascii_lowercase();
        let slot = match lower.as_str() {
            "cache-control" => &mut headers.cache_control,
            "content-type" => &mut headers.content_type,
            "content-encoding" => &mut headers.content_encoding,
            "content-language" => &mut headers.content_language,
            "content-disposition" => &mut headers.content_disposition,
            "expires" => {
                headers.expires = Some(parse_iso8601(&value).ok_or_else(|| {
                    format!("header Expires: {value:?} is not an ISO-8601 date or time")
                })?);
                continue;
            }
            meta if meta.starts_with("x-amz-meta-") && meta.len() > "x-amz-meta-".len() => {
                headers
                    .metadata
                    .insert(meta["x-amz-meta-".len()..].to_string(), value);
                continue;
            }
            _ => {
                return Err(format!(
                    "header {name:?} is not one of Cache-Control, Content-Type, Content-Encoding, \
                     Content-Language, Content-Disposition, Expires, x-amz-meta-*"
                ));
            }
        };
        *slot = Some(value);
    }
    if raw.compress.is_some_and(|c| c != Compress::None) && headers.content_encoding.is_some() {
        return Err(
            "compress sets Content-Encoding itself: remove the Content-Encoding header".into(),
        );
    }
    Ok(Rule {
        by_path: raw.pattern.contains('/'),
        glob,
        headers,
        compress: raw.compress,
        ignore: raw.ignore,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPA: &str = r#"
- match: "index.html"
  headers:
    Cache-Control: "no-cache"
- match: "assets/**"
  headers:
    Cache-Control: "max-age=31536000, immutable"
    x-amz-meta-team: web
  compress: br
- match: "*.html"
  headers: {Cache-Control: "max-age=60"}
  compress: gzip
- match: "drafts/*"
  ignore: true
"#;

    #[test]
    fn first_match_wins_and_patterns_follow_the_documented_rules() {
        let rules = Rules::parse(SPA, "RULES").unwrap();
        // Which rule (1-based) applies to a path.
        let rule = |p: &str| {
            let m = rules.first_match(p)?;
            rules
                .0
                .iter()
                .position(|r| std::ptr::eq(r, m))
                .map(|i| i + 1)
        };
        assert_eq!(rule("index.html"), Some(1));
        assert_eq!(rule("docs/index.html"), Some(1));
        assert_eq!(rule("assets/js/app.js"), Some(2));
        assert_eq!(rule("about.html"), Some(3));
        assert_eq!(rule("drafts/x.md"), Some(4));
        assert_eq!(rule("drafts/deep/x.md"), None);
        assert_eq!(rule("robots.txt"), None);
        assert_eq!(
            rules.first_match("assets/a.css").unwrap().compress,
            Some(Compress::Br)
        );
    }

    #[test]
    fn rule_headers_override_variables_which_fill_the_rest() {
        let rules = Rules::parse(SPA, "RULES").unwrap();
        let base = ObjectSettings {
            cache_control: Some("max-age=300".into()),
            content_language: Some("en".into()),
            ..Default::default()
        };
        let merged = merge(&base, rules.first_match("assets/a.js"));
        assert_eq!(
            merged.cache_control.as_deref(),
            Some("max-age=31536000, immutable")
        );
        assert_eq!(merged.content_language.as_deref(), Some("en"));
        assert_eq!(merged.metadata.get("team").map(String::as_str), Some("web"));
        assert_eq!(merge(&base, rules.first_match("robots.txt")), base);
    }

    /// The README's recipes are valid rules files.
    #[test]
    fn readme_recipes_parse() {
        let readme = include_str!("../README.md");
        let recipes: Vec<&str> = readme
            .split("```\n# .s3-cloudfront-deploy.yml\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap())
            .collect();
        assert_eq!(recipes.len(), 2);
        for recipe in recipes {
            let rules = Rules::parse(recipe, "README").unwrap();
            assert!(rules.0.len() >= 4);
        }
    }

    #[test]
    fn broken_rules_say_where_and_why() {
        let bad_yaml = "- match: a\n  headers: [\n";
        let e = Rules::parse(bad_yaml, ".s3-cloudfront-deploy.yml").unwrap_err();
        assert!(e.starts_with(".s3-cloudfront-deploy.yml line "), "{e}");
        let unknown = "- match: a\n  cache: 1\n";
        let e = Rules::parse(unknown, "RULES").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("unknown field `cache`"),
            "{e}"
        );
        let header = "- match: a\n  headers: {X-Frame-Options: DENY}\n";
        assert!(
            Rules::parse(header, "RULES")
                .unwrap_err()
                .contains("rule 1: header \"X-Frame-Options\"")
        );
        let expires = "- match: a\n  headers: {Expires: soon}\n";
        assert!(
            Rules::parse(expires, "RULES")
                .unwrap_err()
                .contains("not an ISO-8601")
        );
        let codec = "- match: a\n  compress: zstd\n";
        assert!(Rules::parse(codec, "RULES").unwrap_err().contains("line 2"));
        let twice = "- match: a\n  compress: gzip\n  headers: {Content-Encoding: br}\n";
        assert!(
            Rules::parse(twice, "RULES")
                .unwrap_err()
                .contains("remove the Content-Encoding")
        );
    }
}
