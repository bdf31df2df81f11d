//! `EXTRA_ARGS`: the `aws s3 sync` flags users of atlassian/aws-s3-deploy
//! already pass, parsed as that pipe receives them (a shell-quoted string, or
//! Bitbucket's list form `EXTRA_ARGS_COUNT` + `EXTRA_ARGS_0..n`).

use std::collections::BTreeMap;

use crate::model::Sse;
use crate::plan::filter::{Filters, Kind, Rule};

/// What the flags ask for; `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraArgs {
    pub filters: Filters,
    pub dryrun: bool,
    pub delete: bool,
    pub size_only: bool,
    pub follow_symlinks: Option<bool>,
    pub acl: Option<String>,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub expires: Option<String>,
    pub storage_class: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub sse: Option<Sse>,
    pub sse_kms_key_id: Option<String>,
    pub quiet: bool,
    pub no_progress: bool,
    /// Flags accepted with nothing to do, and why, for an INFO line.
    pub notes: Vec<String>,
}

/// Flags that take a value.
const WITH_VALUE: &[&str] = &[
    "--exclude",
    "--include",
    "--acl",
    "--cache-control",
    "--content-type",
    "--content-encoding",
    "--content-language",
    "--content-disposition",
    "--expires",
    "--storage-class",
    "--metadata",
    "--sse",
    "--sse-kms-key-id",
];

/// Flags that stand alone.
const SWITCHES: &[&str] = &[
    "--dryrun",
    "--delete",
    "--size-only",
    "--exact-timestamps",
    "--follow-symlinks",
    "--no-follow-symlinks",
    "--only-show-errors",
    "--quiet",
    "--no-progress",
];

pub fn supported() -> String {
    let mut all: Vec<&str> = WITH_VALUE.iter().chain(SWITCHES).copied().collect();
    all.sort_unstable();
    all.join(", ")
}

/// The arguments from either form; the string form wins when both are set.
pub fn words(string: Option<&str>, list: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    if let Some(s) = string {
        return shell_words::split(s)
            .map_err(|e| format!("cannot be split like a shell command line: {e}"));
    }
    let Some(count) = list.get("EXTRA_ARGS_COUNT") else {
        return Ok(Vec::new());
    };
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| format!("EXTRA_ARGS_COUNT {count:?} is not a number"))?;
    (0..count)
        .map(|i| {
            list.get(&format!("EXTRA_ARGS_{i}"))
                .cloned()
                .ok_or_else(|| format!("EXTRA_ARGS_COUNT is {count} but EXTRA_ARGS_{i} is not set"))
        })
        .collect()
}

pub fn parse(words: &[String]) -> Result<ExtraArgs, Vec<String>> {
    let mut out = ExtraArgs::default();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (word.as_str(), None),
        };
        if SWITCHES.contains(&flag) {
            if inline.is_some() {
                errors.push(format!("{flag} takes no value"));
            }
            switch(&mut out, flag);
            continue;
        }
        if !WITH_VALUE.contains(&flag) {
            errors.push(if flag.starts_with('-') {
                format!("{flag} is not supported; supported flags: {}", supported())
            } else {
                format!(
                    "{flag:?} is not a flag: the source and destination come from LOCAL_PATH and S3_BUCKET"
                )
            });
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None if i < words.len() => {
                i += 1;
                words[i - 1].clone()
            }
            None => {
                errors.push(format!("{flag} needs a value"));
                continue;
            }
        };
        if let Err(e) = valued(&mut out, flag, value) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn switch(out: &mut ExtraArgs, flag: &str) {
    match flag {
        "--dryrun" => out.dryrun = true,
        "--delete" => out.delete = true,
        "--size-only" => out.size_only = true,
        "--follow-symlinks" => out.follow_symlinks = Some(true),
        "--no-follow-symlinks" => out.follow_symlinks = Some(false),
        "--only-show-errors" | "--quiet" => out.quiet = true,
        "--exact-timestamps" => out.notes.push(
            "--exact-timestamps has no effect: files are compared by content hash, never by time"
                .into(),
        ),
        "--no-progress" => out.no_progress = true,
        _ => unreachable!("every switch is handled"),
    }
}

fn valued(out: &mut ExtraArgs, flag: &str, value: String) -> Result<(), String> {
    let slot = match flag {
        "--exclude" | "--include" => {
            let kind = if flag == "--exclude" {
                Kind::Exclude
            } else {
                Kind::Include
            };
            out.filters.0.push(Rule {
                kind,
                pattern: value,
            });
            return Ok(());
        }
        "--metadata" => {
            for pair in value.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--metadata {pair:?} is not key=value"))?;
                out.metadata
                    .insert(k.trim().to_string(), v.trim().to_string());
            }
            return Ok(());
        }
        "--acl" => &mut out.acl,
        "--cache-control" => &mut out.cache_control,
        "--content-type" => &mut out.content_type,
        "--content-encoding" => &mut out.content_encoding,
        "--content-language" => &mut out.content_language,
        "--content-disposition" => &mut out.content_disposition,
        "--expires" => &mut out.expires,
        "--storage-class" => &mut out.storage_class,
        "--sse" => {
            out.sse = Some(
                Sse::parse(&value)
                    .ok_or_else(|| format!("--sse {value:?} is not one of: {}", Sse::names()))?,
            );
            return Ok(());
        }
        "--sse-kms-key-id" => &mut out.sse_kms_key_id,
        _ => unreachable!("every flag with a value is handled"),
    };
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<ExtraArgs, Vec<String>> {
        parse(&words(Some(s), &BTreeMap::new()).unwrap())
    }

    #[test]
    fn quotes_and_equals_forms() {
        let a = parse_str(r#"--exclude "*.map" --include='keep me.map' --cache-control "max-age=60, public" --delete"#)
            .unwrap();
        assert_eq!(
            a.filters.0,
            [
                Rule {
                    kind: Kind::Exclude,
                    pattern: "*.map".into()
                },
                Rule {
                    kind: Kind::Include,
                    pattern: "keep me.map".into()
                }
            ]
        );
        assert_eq!(a.cache_control.as_deref(), Some("max-age=60, public"));
        assert!(a.delete);
    }

    #[test]
    fn list_form() {
        let list: BTreeMap<String, String> = [
            ("EXTRA_ARGS_COUNT", "3"),
            ("EXTRA_ARGS_0", "--exclude"),
            ("EXTRA_ARGS_1", "build dir/*"),
            ("EXTRA_ARGS_2", "--dryrun"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let a = parse(&words(None, &list).unwrap()).unwrap();
        assert_eq!(a.filters.0[0].pattern, "build dir/*");
        assert!(a.dryrun);
        let mut short = list.clone();
        short.insert("EXTRA_ARGS_COUNT".into(), "4".into());
        assert!(
            words(None, &short)
                .unwrap_err()
                .contains("EXTRA_ARGS_3 is not set")
        );
    }

    #[test]
    fn every_documented_flag_is_accepted() {
        let a = parse_str(
            "--dryrun --size-only --exact-timestamps --no-follow-symlinks --acl public-read --content-type text/plain \
             --content-encoding gzip --content-language en --content-disposition inline --expires 2030-01-01 \
             --storage-class STANDARD_IA --metadata a=1,b=2 --sse aws:kms --sse-kms-key-id k --only-show-errors --no-progress",
        )
        .unwrap();
        assert!(a.dryrun && a.size_only && a.quiet);
        assert_eq!(a.follow_symlinks, Some(false));
        assert_eq!(a.metadata.get("b").map(String::as_str), Some("2"));
        assert_eq!(a.notes.len(), 1);
        assert!(a.no_progress);
        assert_eq!(a.sse, Some(Sse::Kms));
    }

    #[test]
    fn unknown_flags_and_bad_values_are_errors() {
        let e = parse_str("--recursive --exclude").unwrap_err();
        assert!(
            e[0].starts_with(
                "--recursive is not supported; supported flags: --acl, --cache-control"
            ),
            "{e:?}"
        );
        assert_eq!(e[1], "--exclude needs a value");
        assert!(parse_str("s3://other-bucket").unwrap_err()[0].contains("is not a flag"));
        assert!(parse_str("--sse rot13").is_err());
        assert!(parse_str("--delete=yes").is_err());
        assert!(parse_str("--metadata nokey").is_err());
        assert!(words(Some("--exclude 'unterminated"), &BTreeMap::new()).is_err());
    }
}
