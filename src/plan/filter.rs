//! `--exclude` / `--include` with `aws s3 sync` semantics: every path is in
//! until a filter says otherwise, filters apply in order and the last match
//! wins; patterns are Python `fnmatch` patterns over the path relative to
//! LOCAL_PATH (or to the prefix, for remote keys), so `*` crosses `/`.
//!
//! Hand-written rather than a glob crate: glob crates give `{a,b}` and `**`
//! meanings that fnmatch does not have, and users' existing patterns must
//! keep matching exactly what they matched under aws-cli.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Include,
    Exclude,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub pattern: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub Vec<Rule>);

impl Filters {
    /// Whether a relative path takes part in the sync.
    pub fn includes(&self, relative: &str) -> bool {
        let mut included = true;
        for rule in &self.0 {
            if fnmatch(rule.pattern.as_bytes(), relative.as_bytes()) {
                included = rule.kind == Kind::Include;
            }
        }
        included
    }
}

/// Python's `fnmatch.fnmatchcase`: `*` any run (including `/`), `?` any one
/// character, `[seq]` / `[!seq]` a set with ranges; anything else literal.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let pattern = String::from_utf8_lossy(pattern);
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches(&pattern, &text)
}

fn matches(p: &[char], t: &[char]) -> bool {
    // Iterative with one backtrack point for the last `*`, as a `*` followed
    // by a failed match only ever needs to swallow one more character.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((hit, next)) = class(&p[pi..], t[ti]) {
                        if hit {
                            pi += next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // An unclosed `[` is a literal, as in fnmatch.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (`[...]`); returns
/// whether it matched and the class's length, or `None` if it is unclosed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    loop {
        let &ch = p.get(i)?;
        if ch == ']' && i > start {
            return Some((hit != negate, i + 1));
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            if (ch..=p[i + 2]).contains(&c) {
                hit = true;
            }
            i += 3;
        } else {
            if ch == c {
                hit = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(args: &[(&str, &str)]) -> Filters {
        Filters(
            args.iter()
                .map(|(k, p)| Rule {
                    kind: if *k == "exclude" {
                        Kind::Exclude
                    } else {
                        Kind::Include
                    },
                    pattern: p.to_string(),
                })
                .collect(),
        )
    }

    /// The cases of aws-cli's "Use of Exclude and Include Filters"
    /// documentation, and the surprises users meet.
    #[test]
    fn aws_cli_filter_semantics() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
        let cases: &[Case] = &[
            // Everything is included by default.
            (&[], "a/b.txt", true),
            // The documentation's examples, with /tmp/foo as the source.
            (&[("exclude", ".git/*")], ".git/config", false),
            (&[("exclude", ".git/*")], "bar.txt", true),
            (&[("exclude", "*"), ("include", "*.txt")], "foo.txt", true),
            (&[("exclude", "*"), ("include", "*.txt")], "bar.jpg", false),
            // Order matters: the last matching filter wins.
            (&[("include", "*.txt"), ("exclude", "*")], "foo.txt", false),
            (
                &[("exclude", "*.txt"), ("include", "*.txt")],
                "foo.txt",
                true,
            ),
            (
                &[
                    ("exclude", "*"),
                    ("include", "*.txt"),
                    ("exclude", "secret*"),
                ],
                "secret.txt",
                false,
            ),
            (
                &[
                    ("exclude", "*"),
                    ("include", "*.txt"),
                    ("exclude", "secret*"),
                ],
                "public.txt",
                true,
            ),
            // `*` crosses `/`: a pattern without a folder still matches deep files.
            (&[("exclude", "*.txt")], "a/b/c.txt", false),
            (&[("exclude", "*.log")], "logs/2024/app.log", false),
            // Patterns are matched against the whole relative path.
            (&[("exclude", "dir")], "dir/file", true),
            (&[("exclude", "dir/*")], "dir/sub/file", false),
            (&[("exclude", "file")], "dir/file", true),
            (&[("exclude", "*/file")], "dir/file", false),
            // `?` is exactly one character, `/` included.
            (&[("exclude", "a?c")], "abc", false),
            (&[("exclude", "a?c")], "a/c", false),
            (&[("exclude", "a?c")], "abbc", true),
            // Sets, ranges and negated sets.
            (&[("exclude", "img[0-9].png")], "img7.png", false),
            (&[("exclude", "img[0-9].png")], "imgx.png", true),
            (&[("exclude", "img[!0-9].png")], "imgx.png", false),
            (&[("exclude", "[]]x")], "]x", false),
            // Case-sensitive, as on Linux.
            (&[("exclude", "*.JPG")], "photo.jpg", true),
            // Braces and `**` are literal in fnmatch (globs would differ).
            (&[("exclude", "*.{js,css}")], "a.js", true),
            (&[("exclude", "*.{js,css}")], "a.{js,css}", false),
            (&[("exclude", "**/x")], "a/x", false),
            // Hidden files are matched by `*`.
            (&[("exclude", "*")], ".well-known/x", false),
            (&[("exclude", ".*")], ".env", false),
            // An unclosed bracket is a literal.
            (&[("exclude", "a[b")], "a[b", false),
        ];
        for (rules, path, expected) in cases {
            assert_eq!(
                filters(rules).includes(path),
                *expected,
                "{rules:?} on {path}"
            );
        }
    }

    #[test]
    fn fnmatch_corner_cases() {
        assert!(fnmatch(b"*", b""));
        assert!(fnmatch(b"a*b*c", b"aXbYbZc"));
        assert!(!fnmatch(b"a*b*c", b"aXbYbZ"));
        assert!(fnmatch(b"caf\xc3\xa9*", "café.txt".as_bytes()));
        assert!(fnmatch(b"??", "é!".as_bytes()));
    }
}
