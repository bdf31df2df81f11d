//! Which incomplete multipart uploads to abort: those old enough that no
//! running deploy can still be uploading them. One whose start is unknown
//! is kept, since it may be another deploy's in flight.

use std::time::Duration;

use crate::model::IncompleteUpload;

/// The uploads initiated more than `max_age` before `now` (both in
/// seconds since the Unix epoch).
pub fn stale(uploads: &[IncompleteUpload], now: i64, max_age: Duration) -> Vec<&IncompleteUpload> {
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    uploads
        .iter()
        .filter(|u| u.initiated.is_some_and(|t| now.saturating_sub(t) > max_age))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Key;

    fn upload(key: &str, initiated: Option<i64>) -> IncompleteUpload {
        IncompleteUpload {
            key: Key::new(key),
            upload_id: key.into(),
            initiated,
        }
    }

    #[test]
    fn only_uploads_older_than_the_age_are_stale() {
        let hour = Duration::from_secs(3600);
        let uploads = [
            upload("old", Some(1_000)),
            upload("recent", Some(10_000 - 60)),
            upload("unknown", None),
            upload("exactly", Some(10_000 - 3600)),
            upload("future", Some(20_000)),
        ];
        let stale: Vec<&str> = stale(&uploads, 10_000, hour)
            .iter()
            .map(|u| u.key.as_str())
            .collect();
        assert_eq!(stale, ["old"]);
    }
}
