//! DELETE_GRACE, decided purely: how long an object whose local file is
//! gone stays published before DELETE_FLAG deletes it, so that a visitor
//! still holding the old HTML (an open tab, a browser or CDN cache, a
//! service worker) never gets a 404 for the old hashed asset names.
//!
//! The bookkeeping is a [`Mark`] per such key, kept in the deploy manifest
//! (indexed by the key's digest, like its entries): when the key was first
//! found with no local file, and how many deploys covered it since. Each
//! deploy judges every marked key against the grace with the clock it is
//! given, never its own: a test sets the clock, and a clock that went back
//! only makes the grace longer.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{ByKey, Key};

/// DELETE_GRACE: a duration, a number of deploys, or both; zero (the
/// default) deletes at once.
///
/// With both, the grace ends when **both** have passed: a visitor may hold
/// the old HTML for a while (a tab left open, a cache's TTL) and across
/// releases (a service worker that serves the page it cached N releases
/// ago), and only when neither can still be true is the old name unused.
/// Ending it when either passed would break the other visitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grace {
    /// Zero when DELETE_GRACE names no duration.
    pub time: Duration,
    /// Deploys that must cover the key after the one that found it gone;
    /// zero when DELETE_GRACE names no number.
    pub deploys: u32,
}

impl Grace {
    /// Reads `90m`, `24h`, `7d` (humantime's units, as the other durations
    /// of the pipe), `3 deploys` (or `1 deploy`), both separated by a comma
    /// in either order (`7d, 5 deploys`), or `0`.
    ///
    /// Errors: a sentence fit to follow the variable's name, with examples.
    pub fn parse(value: &str) -> Result<Grace, String> {
        let value = value.trim();
        let invalid = |why: String| {
            format!(
                "{value:?} {why}: write a duration (90m, 24h, 7d), a number of deploys (3 deploys), \
                 or both (7d, 5 deploys); 0 deletes at once"
            )
        };
        let mut grace = Grace::default();
        let (mut time, mut deploys) = (false, false);
        for part in value.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(invalid("has an empty part".into()));
            }
            let lower = part.to_ascii_lowercase();
            let count = lower
                .strip_suffix("deploys")
                .or_else(|| lower.strip_suffix("deploy"));
            if let Some(count) = count {
                if std::mem::replace(&mut deploys, true) {
                    return Err(invalid("names a number of deploys twice".into()));
                }
                grace.deploys = count.trim().parse().map_err(|_| {
                    invalid(format!(
                        "has {:?} where a number of deploys goes",
                        count.trim()
                    ))
                })?;
            } else {
                if std::mem::replace(&mut time, true) {
                    return Err(invalid("names a duration twice".into()));
                }
                grace.time = match part {
                    "0" => Duration::ZERO,
                    _ => humantime::parse_duration(part)
                        .map_err(|e| invalid(format!("is not a grace period ({part:?}: {e})")))?,
                };
            }
        }
        Ok(grace)
    }

    /// Whether objects are deleted at once.
    pub fn is_zero(&self) -> bool {
        self.time.is_zero() && self.deploys == 0
    }

    /// Seconds of the duration, saturated: `1000 years` must not wrap.
    fn seconds(&self) -> i64 {
        i64::try_from(self.time.as_secs()).unwrap_or(i64::MAX)
    }
}

/// What the manifest records of a key with no local file, until it is
/// deleted or its file comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// When the key was first found with no local file, in seconds since
    /// the Unix epoch: the marking deploy's clock, raised by [`Mark::read`].
    pub since: i64,
    /// Deploys that covered the key since the one that marked it. A deploy
    /// counts when it completes (a killed or failed one writes no
    /// manifest) and covers the key: a pass whose filters or `ignore`
    /// rules leave the key out does not count, so a two-pass deploy
    /// (assets, then pages) counts once.
    pub deploys: u32,
    /// Written by the deploy that made it, whose clock `since` is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

impl Mark {
    /// The mark as the next deploy reads it from a manifest S3 stamped at
    /// `written` (its LastModified, in seconds since the epoch, from S3's
    /// clock). A provisional mark was made before that manifest was
    /// written, so before `written + 1` (S3 truncates to the second): its
    /// time becomes at least that. A marking deploy whose clock ran behind
    /// thus never starts the grace earlier than it really started.
    pub fn read(self, written: i64) -> Mark {
        if !self.provisional {
            return self;
        }
        Mark {
            since: self.since.max(written.saturating_add(1)),
            deploys: self.deploys,
            provisional: false,
        }
    }
}

/// Which parts of a kept key's grace are still to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// When the duration ends, in seconds since the epoch; `None` when
    /// DELETE_GRACE has no duration or it has passed.
    pub until: Option<i64>,
    /// Deploys still to cover the key; `None` when DELETE_GRACE has no
    /// number or they have run.
    pub deploys_left: Option<u32>,
}

/// `2026-12-01 10:00 UTC`, rounded up to the minute so that the time shown
/// is never before the grace really ends.
pub fn minute(seconds: i64) -> String {
    let up = seconds
        .div_euclid(60)
        .saturating_add(i64::from(seconds.rem_euclid(60) > 0));
    jiff::Timestamp::from_second(up.saturating_mul(60)).map_or_else(
        |_| format!("@{seconds}"),
        |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// `grace until 2026-12-01 10:00 UTC and 2 more deploys`: the parts still
/// to pass, all of which must.
impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deploys = |n: u32| format!("{n} more deploy{}", if n == 1 { "" } else { "s" });
        match (self.until, self.deploys_left) {
            (Some(t), Some(n)) => write!(f, "grace until {} and {}", minute(t), deploys(n)),
            (Some(t), None) => write!(f, "grace until {}", minute(t)),
            (None, Some(n)) => write!(f, "grace until {}", deploys(n)),
            (None, None) => write!(f, "grace over"),
        }
    }
}

/// A key with no local file, kept for its grace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelete {
    pub key: Key,
    /// Bytes.
    pub size: u64,
    /// What the next manifest records of it.
    pub mark: Mark,
    pub expiry: Expiry,
}

/// What a deploy judges its keys with no local file by.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    pub grace: Grace,
    /// The deploy's clock, in seconds since the epoch.
    pub now: i64,
    /// The marks the manifest holds, read ([`Mark::read`]), by key.
    pub marks: &'a ByKey<Mark>,
}

impl Judge<'_> {
    /// `None` when the key's grace is over (delete it now); otherwise the
    /// key kept, with its mark for the next manifest: this deploy's clock
    /// for a key found gone now, one more deploy for a key marked before.
    ///
    /// The duration has passed when the clock is at least `since +
    /// duration`: a clock behind the mark (it went back between deploys)
    /// is before it, never past it, and the mark keeps its time.
    pub fn keep(&self, key: &Key, size: u64) -> Option<PendingDelete> {
        if self.grace.is_zero() {
            return None;
        }
        let mark = match self.marks.get(key) {
            Some(m) => Mark {
                deploys: m.deploys.saturating_add(1),
                ..*m
            },
            None => Mark {
                since: self.now,
                deploys: 0,
                provisional: true,
            },
        };
        let end = mark.since.saturating_add(self.grace.seconds());
        let time_left = !self.grace.time.is_zero() && self.now < end;
        let deploys_left = self.grace.deploys.saturating_sub(mark.deploys);
        if !time_left && deploys_left == 0 {
            return None;
        }
        Some(PendingDelete {
            key: key.clone(),
            size,
            mark,
            expiry: Expiry {
                until: time_left.then_some(end),
                deploys_left: (deploys_left > 0).then_some(deploys_left),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const HOUR: i64 = 3600;
    /// 2030-01-01T00:00:00Z.
    const T0: i64 = 1_893_456_000;

    fn grace(value: &str) -> Grace {
        Grace::parse(value).unwrap()
    }

    #[test]
    fn durations_numbers_of_deploys_or_both() {
        assert_eq!(grace("0"), Grace::default());
        assert!(grace("0").is_zero() && grace("0s, 0 deploys").is_zero());
        assert_eq!(grace("90m").time, Duration::from_secs(5400));
        assert_eq!(grace(" 7d ").time, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            grace("3 deploys"),
            Grace {
                time: Duration::ZERO,
                deploys: 3
            }
        );
        assert_eq!(grace("1 deploy").deploys, 1);
        assert_eq!(grace("4 Deploys").deploys, 4);
        for both in ["7d, 5 deploys", "5 deploys,7d", "5deploys , 7 days"] {
            assert_eq!(
                grace(both),
                Grace {
                    time: Duration::from_secs(7 * 24 * 3600),
                    deploys: 5
                },
                "{both}"
            );
        }
        for bad in [
            "soon",
            "-3 deploys",
            "three deploys",
            "1h, 2h",
            "2 deploys, 3 deploys",
            "1h,",
            "",
            "2 deploys,, 1h",
        ] {
            let e = Grace::parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("{bad:?} ")), "{e}");
            assert!(e.contains("7d, 5 deploys"), "{e}");
        }
    }

    /// One deploy's judgement of `key`, the marks updated as the next
    /// manifest would hold them (read back as the deploy after reads them).
    fn deploy(grace: Grace, now: i64, marks: &mut HashMap<Key, Mark>) -> Option<Expiry> {
        let key = Key::new("app.1.js");
        let read: ByKey<Mark> = marks.iter().map(|(k, m)| (k.clone(), *m)).collect();
        let judged = Judge {
            grace,
            now,
            marks: &read,
        }
        .keep(&key, 1);
        match &judged {
            // S3's clock far behind the deploy's, as when a test sets the
            // clock ahead: the marks keep the deploy's times.
            Some(p) => marks.insert(key, p.mark.read(i64::MIN)),
            None => marks.remove(&key),
        };
        judged.map(|p| p.expiry)
    }

    #[test]
    fn zero_deletes_at_once() {
        let mut marks = HashMap::new();
        assert_eq!(deploy(Grace::default(), T0, &mut marks), None);
        // A key marked under an earlier DELETE_GRACE goes too.
        marks.insert(
            Key::new("app.1.js"),
            Mark {
                since: T0,
                deploys: 0,
                provisional: false,
            },
        );
        assert_eq!(deploy(Grace::default(), T0, &mut marks), None);
    }

    #[test]
    fn a_duration_ends_at_the_first_deploy_at_or_after_its_end() {
        let g = grace("2h");
        let mut marks = HashMap::new();
        let until = |t| {
            Some(Expiry {
                until: Some(t),
                deploys_left: None,
            })
        };
        assert_eq!(deploy(g, T0, &mut marks), until(T0 + 2 * HOUR));
        assert_eq!(deploy(g, T0 + HOUR, &mut marks), until(T0 + 2 * HOUR));
        assert_eq!(
            deploy(g, T0 + 2 * HOUR - 1, &mut marks),
            until(T0 + 2 * HOUR)
        );
        assert_eq!(deploy(g, T0 + 2 * HOUR, &mut marks), None);
        assert!(marks.is_empty());
    }

    #[test]
    fn a_number_of_deploys_counts_the_deploys_after_the_marking_one() {
        let g = grace("2 deploys");
        let mut marks = HashMap::new();
        let left = |n| {
            Some(Expiry {
                until: None,
                deploys_left: Some(n),
            })
        };
        // v2 finds app.1.js gone, v3 keeps it, v4 deletes it, whatever the
        // time: a clock that went back a year counts the same.
        assert_eq!(deploy(g, T0, &mut marks), left(2));
        assert_eq!(deploy(g, T0 - 365 * 24 * HOUR, &mut marks), left(1));
        assert_eq!(deploy(g, T0 + 1, &mut marks), None);
    }

    #[test]
    fn with_both_the_grace_ends_when_both_have_passed() {
        let g = grace("2h, 2 deploys");
        // The time passes first: the deploys still keep it.
        let mut marks = HashMap::new();
        deploy(g, T0, &mut marks);
        let e = deploy(g, T0 + 3 * HOUR, &mut marks).unwrap();
        assert_eq!(
            e,
            Expiry {
                until: None,
                deploys_left: Some(1)
            }
        );
        assert_eq!(e.to_string(), "grace until 1 more deploy");
        assert_eq!(deploy(g, T0 + 3 * HOUR, &mut marks), None);
        // The deploys pass first: the time still keeps it.
        let mut marks = HashMap::new();
        let e = deploy(g, T0, &mut marks).unwrap();
        assert_eq!(
            e.to_string(),
            "grace until 2030-01-01 02:00 UTC and 2 more deploys"
        );
        deploy(g, T0 + 60, &mut marks);
        let e = deploy(g, T0 + 120, &mut marks).unwrap();
        assert_eq!(e.to_string(), "grace until 2030-01-01 02:00 UTC");
        assert!(deploy(g, T0 + 2 * HOUR - 1, &mut marks).is_some());
        assert_eq!(deploy(g, T0 + 2 * HOUR, &mut marks), None);
    }

    #[test]
    fn a_key_that_comes_back_loses_its_mark_and_starts_afresh() {
        let g = grace("2 deploys");
        let mut marks = HashMap::new();
        deploy(g, T0, &mut marks);
        deploy(g, T0 + HOUR, &mut marks);
        assert_eq!(marks[&Key::new("app.1.js")].deploys, 1);
        // The file is back: the plan uploads or skips it, and the next
        // manifest holds no mark for it (`manifest::next`).
        marks.clear();
        // Gone again: a whole new grace.
        assert_eq!(
            deploy(g, T0 + 2 * HOUR, &mut marks).unwrap().deploys_left,
            Some(2)
        );
    }

    #[test]
    fn a_clock_that_goes_back_never_deletes_early() {
        let g = grace("2h");
        let mut marks = HashMap::new();
        deploy(g, T0, &mut marks);
        // Back a day, then back to where the first deploy was: the mark
        // keeps its time, and the grace still ends at T0 + 2h.
        for now in [T0 - 24 * HOUR, T0, T0 + 2 * HOUR - 1] {
            let e = deploy(g, now, &mut marks).unwrap();
            assert_eq!(e.until, Some(T0 + 2 * HOUR), "{now}");
            assert_eq!(marks[&Key::new("app.1.js")].since, T0);
        }
        assert_eq!(deploy(g, T0 + 2 * HOUR, &mut marks), None);
    }

    #[test]
    fn a_marking_clock_behind_s3_starts_the_grace_at_the_manifest_s_stamp() {
        let g = grace("2h");
        let key = Key::new("app.1.js");
        let none = ByKey::default();
        // The marking deploy's clock says T0; S3 stamped its manifest a
        // day later, when it really ran.
        let stamped = T0 + 24 * HOUR;
        let made = Judge {
            grace: g,
            now: T0,
            marks: &none,
        }
        .keep(&key, 1)
        .unwrap();
        assert!(made.mark.provisional);
        let read = made.mark.read(stamped);
        assert_eq!(read.since, stamped + 1);
        let marks = ByKey::from([(key.clone(), read)]);
        let at = |now| {
            Judge {
                grace: g,
                now,
                marks: &marks,
            }
            .keep(&key, 1)
        };
        // Its clock set right, the next deploy still waits the whole grace.
        assert!(at(stamped + 2 * HOUR).is_some());
        assert!(at(stamped + 1 + 2 * HOUR).is_none());
        // A read mark keeps its time, whatever stamps later manifests bear.
        assert_eq!(read.read(stamped + 99 * HOUR), read);
        // A marking clock ahead of S3 keeps its own, later, time.
        let ahead = Mark {
            since: stamped + HOUR,
            deploys: 0,
            provisional: true,
        };
        assert_eq!(ahead.read(stamped).since, stamped + HOUR);
    }

    #[test]
    fn times_are_shown_rounded_up_to_the_minute() {
        assert_eq!(minute(T0), "2030-01-01 00:00 UTC");
        assert_eq!(minute(T0 + 1), "2030-01-01 00:01 UTC");
        assert_eq!(minute(T0 + 59), "2030-01-01 00:01 UTC");
        assert_eq!(minute(T0 - 1), "2030-01-01 00:00 UTC");
    }
}
