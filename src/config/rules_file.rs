//! The rules file (`.s3-cloudfront-deploy.yml`, RULES_FILE) and `RULES`:
//! a YAML list of rules, checked whole, with errors that name the source,
//! the line and the reason.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::ObjectSettings;
use crate::plan::rules::{Compress, Rule, Rules};

use super::dates::parse_expires;

/// The rules file looked for in the working directory (the clone's root in
/// Bitbucket) when RULES_FILE is not set.
pub const DEFAULT_FILE: &str = ".s3-cloudfront-deploy.yml";

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

/// Parses a YAML list of rules; `source` names it in errors.
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

fn rule(raw: RawRule) -> Result<Rule, String> {
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
                let at =
                    parse_expires(&value).map_err(|e| format!("header Expires: {value:?} {e}"))?;
                headers.expires = Some(at);
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
    Rule::new(&raw.pattern, headers, raw.compress, raw.ignore)
        .map_err(|e| format!("match {:?}: {e}", raw.pattern))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::merge;

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
        let rules = parse(SPA, "RULES").unwrap();
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
        let rules = parse(SPA, "RULES").unwrap();
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
        let readme = include_str!("../../README.md");
        let recipes: Vec<&str> = readme
            .split("```\n# .s3-cloudfront-deploy.yml\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap())
            .collect();
        assert_eq!(recipes.len(), 2);
        for recipe in recipes {
            let rules = parse(recipe, "README").unwrap();
            assert!(rules.0.len() >= 4);
        }
    }

    #[test]
    fn broken_rules_say_where_and_why() {
        let bad_yaml = "- match: a\n  headers: [\n";
        let e = parse(bad_yaml, ".s3-cloudfront-deploy.yml").unwrap_err();
        assert!(e.starts_with(".s3-cloudfront-deploy.yml line "), "{e}");
        let unknown = "- match: a\n  cache: 1\n";
        let e = parse(unknown, "RULES").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("unknown field `cache`"),
            "{e}"
        );
        let header = "- match: a\n  headers: {X-Frame-Options: DENY}\n";
        assert!(
            parse(header, "RULES")
                .unwrap_err()
                .contains("rule 1: header \"X-Frame-Options\"")
        );
        let expires = "- match: a\n  headers: {Expires: soon}\n";
        assert!(
            parse(expires, "RULES")
                .unwrap_err()
                .contains("is not a date in a form aws-cli reads")
        );
        let codec = "- match: a\n  compress: zstd\n";
        assert!(parse(codec, "RULES").unwrap_err().contains("line 2"));
        let twice = "- match: a\n  compress: gzip\n  headers: {Content-Encoding: br}\n";
        assert!(
            parse(twice, "RULES")
                .unwrap_err()
                .contains("remove the Content-Encoding")
        );
    }
}
