//! The delete guard: a pure check of a plan's deletes against the limits,
//! before any write, so a broken build or a wrong LOCAL_PATH deletes nothing.

use crate::model::Prefix;

use super::Plan;

/// How many deletes a plan may hold before the deploy is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    /// Refuse deleting more than half of the remote objects when that is
    /// also more than the folder holds: what a broken build or a wrong
    /// LOCAL_PATH looks like. A build that renames its hashed assets
    /// (deleting most objects, uploading as many) passes.
    Default,
    /// At most this share of the remote objects (0.5 for `MAX_DELETE=50%`).
    Fraction(f64),
    Count(usize),
}

/// Why a plan's deletes were refused before any write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteRefused {
    #[error(
        "LOCAL_PATH is empty and DELETE_FLAG would delete all {remote} objects under the prefix: refusing. \
         Check that the build produced files; to really empty the prefix, set ALLOW_DELETE_ALL to true"
    )]
    EmptyFolder { remote: usize },
    #[error(
        "the plan deletes {deletes} of {remote} remote objects, more than MAX_DELETE allows ({limit}): refusing \
         before any change. Check LOCAL_PATH and the filters; if this is intended, raise MAX_DELETE \
         (a number, or a percentage such as 100%)"
    )]
    TooMany {
        deletes: usize,
        remote: usize,
        limit: usize,
    },
    #[error(
        "the plan deletes {deletes} of {remote} remote objects, more than half of them and more than the \
         {local} files LOCAL_PATH holds: refusing before any change, as this is what a broken build or a wrong \
         LOCAL_PATH looks like. If this is intended, set MAX_DELETE (a number, or a percentage such as 100%)"
    )]
    MostlyGone {
        deletes: usize,
        remote: usize,
        local: usize,
    },
    #[error("refusing to delete {0}: it is outside the deploy prefix")]
    OutsidePrefix(String),
}

/// The limits a deploy's deletes are held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max: MaxDelete,
    pub allow_delete_all: bool,
}

/// Checks the plan's deletes; `remote` and `local` count the objects and
/// files the deploy covers (after filters).
pub fn check(
    plan: &Plan,
    remote: usize,
    local: usize,
    prefix: &Prefix,
    limits: Limits,
) -> Result<(), DeleteRefused> {
    if let Some(outside) = plan.deletes.iter().find(|d| !prefix.contains(&d.key)) {
        return Err(DeleteRefused::OutsidePrefix(outside.key.to_string()));
    }
    if plan.deletes.is_empty() || limits.allow_delete_all {
        return Ok(());
    }
    if local == 0 {
        return Err(DeleteRefused::EmptyFolder { remote });
    }
    let deletes = plan.deletes.len();
    let limit = match limits.max {
        MaxDelete::Count(n) => n,
        MaxDelete::Fraction(f) => (remote as f64 * f).floor() as usize,
        MaxDelete::Default if deletes * 2 > remote && deletes > local => {
            return Err(DeleteRefused::MostlyGone {
                deletes,
                remote,
                local,
            });
        }
        MaxDelete::Default => return Ok(()),
    };
    if deletes > limit {
        return Err(DeleteRefused::TooMany {
            deletes,
            remote,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Key;
    use crate::plan::PlannedDelete;

    fn deletes(n: usize) -> Plan {
        Plan {
            deletes: (0..n)
                .map(|i| PlannedDelete {
                    key: Key::new(format!("p/{i}")),
                    size: 1,
                })
                .collect(),
            ..Plan::default()
        }
    }

    fn limits(max: MaxDelete, allow_delete_all: bool) -> Limits {
        Limits {
            max,
            allow_delete_all,
        }
    }

    #[test]
    fn delete_guard() {
        let p = Prefix::new("p");
        let half = limits(MaxDelete::Fraction(0.5), false);
        assert_eq!(check(&deletes(5), 10, 5, &p, half), Ok(()));
        assert_eq!(
            check(&deletes(6), 10, 4, &p, half),
            Err(DeleteRefused::TooMany {
                deletes: 6,
                remote: 10,
                limit: 5
            })
        );
        let six = limits(MaxDelete::Count(6), false);
        assert_eq!(check(&deletes(6), 10, 4, &p, six), Ok(()));
        let all = limits(MaxDelete::Fraction(1.0), false);
        assert_eq!(
            check(&deletes(3), 3, 0, &p, all),
            Err(DeleteRefused::EmptyFolder { remote: 3 })
        );
        let allowed = limits(MaxDelete::Fraction(0.5), true);
        assert_eq!(check(&deletes(3), 3, 0, &p, allowed), Ok(()));
        assert_eq!(check(&deletes(0), 3, 0, &p, half), Ok(()));
        assert_eq!(
            check(&deletes(1), 10, 9, &Prefix::new("p/sub"), allowed),
            Err(DeleteRefused::OutsidePrefix("p/0".into()))
        );
        let refused = check(&deletes(6), 10, 4, &p, half).unwrap_err().to_string();
        assert!(refused.contains("raise MAX_DELETE"), "{refused}");
    }

    #[test]
    fn default_refuses_a_broken_build_but_not_renamed_assets() {
        let p = Prefix::new("p");
        let default = limits(MaxDelete::Default, false);
        // A build that lost most of its files.
        assert!(matches!(
            check(&deletes(8), 10, 2, &p, default),
            Err(DeleteRefused::MostlyGone { .. })
        ));
        // Every hashed asset renamed: as many files as deletes.
        assert_eq!(check(&deletes(8), 10, 10, &p, default), Ok(()));
    }
}
