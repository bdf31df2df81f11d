//! Parsing of `Expires` timestamps, accepted as aws-cli accepts them.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::fmt::rfc2822;
use jiff::fmt::temporal::{Pieces, PiecesOffset};
use jiff::tz::Offset;

const EXAMPLES: &str = "use ISO 8601 like 2030-01-31T12:00:00Z, RFC 1123 like \
                        Thu, 31 Jan 2030 12:00:00 GMT, or epoch seconds like 1896091200";

/// Seconds since the Unix epoch of an `Expires` value as aws-cli accepts it.
///
/// aws-cli hands `--expires` to botocore, whose `botocore.utils.parse_timestamp`
/// reads a number as epoch seconds and anything else with `dateutil.parser.parse`;
/// `parse_to_aware_datetime` then takes a value without a zone as UTC. This accepts
/// the forms of that which are used in practice (surrounding whitespace is ignored):
///
/// - epoch seconds: `1896091200` (a fraction is truncated);
/// - ISO 8601 / RFC 3339: `2030-01-31` (midnight UTC), `2030-01-31T12:00`,
///   `2030-01-31T12:00:00.250Z` (fraction truncated), `T` or a space between date
///   and time, and a zone of `Z`, `+02:00`, `+0200`, `+02` or none (UTC);
/// - RFC 1123 / RFC 2822: `Thu, 31 Jan 2030 12:00:00 GMT`, `... +0000`.
///
/// A UTC offset must be within ±23:59.
///
/// Errors: a sentence saying what is wrong and giving a valid example, fit to
/// follow `EXPIRES: "<value>" `.
pub fn parse_expires(value: &str) -> Result<i64, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("is empty; {EXAMPLES}"));
    }
    // botocore tries `float(value)` before any date parsing, so a number always
    // means epoch seconds (`as` truncates; `from_second` rejects out-of-range ones).
    if let Some(secs) = value.parse::<f64>().ok().filter(|s| s.is_finite()) {
        return Timestamp::from_second(secs as i64)
            .map(|t| t.as_second())
            .map_err(|e| invalid(&e));
    }
    // Every ISO 8601 form starts with a four-digit year; RFC 2822 never does.
    let (timestamp, offset) = if value
        .get(..4)
        .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()))
    {
        parse_iso8601(&iso_spelling(value))?
    } else {
        let zoned = rfc2822::DateTimeParser::new()
            .parse_zoned(value)
            .map_err(|_| format!("is not a date in a form aws-cli reads; {EXAMPLES}"))?;
        (zoned.timestamp(), zoned.offset())
    };
    // jiff allows offsets up to ±25:59:59, but Python's datetime (so aws-cli)
    // refuses ±24:00 or more.
    if offset.seconds().abs() >= 24 * 3600 {
        let sign = if offset.is_negative() { '-' } else { '+' };
        let secs = offset.seconds().abs();
        return Err(format!(
            "has UTC offset {sign}{:02}:{:02}, but an offset must be within ±23:59; \
             use e.g. 2030-01-31T12:00:00+02:00",
            secs / 3600,
            secs / 60 % 60
        ));
    }
    Ok(timestamp.as_second())
}

fn parse_iso8601(value: &str) -> Result<(Timestamp, Offset), String> {
    let pieces = Pieces::parse(value).map_err(|e| invalid(&e))?;
    if pieces.time_zone_annotation().is_some() {
        return Err(format!(
            "has a [time zone] annotation, which aws-cli does not accept; {EXAMPLES}"
        ));
    }
    let offset = match pieces.offset() {
        Some(PiecesOffset::Numeric(numeric)) => numeric.offset(),
        // No zone means UTC, as in botocore's parse_to_aware_datetime.
        _ => Offset::UTC,
    };
    let datetime = pieces
        .date()
        .to_datetime(pieces.time().unwrap_or(Time::midnight()));
    let timestamp = offset.to_timestamp(datetime).map_err(|e| invalid(&e))?;
    Ok((timestamp, offset))
}

/// What dateutil (so aws-cli) also reads, in the spelling jiff parses: a
/// ` UTC`/` GMT` zone name for `Z`, and a space before a numeric offset.
fn iso_spelling(value: &str) -> String {
    let zoned = [" UTC", " GMT", " utc", " gmt"]
        .iter()
        .find_map(|zone| value.strip_suffix(zone))
        .map_or_else(|| value.to_string(), |v| format!("{v}Z"));
    match zoned.rfind([' ']) {
        Some(i) if zoned[i + 1..].starts_with(['+', '-']) => {
            format!("{}{}", &zoned[..i], &zoned[i + 1..])
        }
        _ => zoned,
    }
}

fn invalid(err: &jiff::Error) -> String {
    format!("is not a valid date ({err}); {EXAMPLES}")
}

#[cfg(test)]
mod tests {
    use super::parse_expires;

    #[test]
    fn expires_inputs() {
        let valid: &[(&str, i64)] = &[
            ("2030-01-31T12:00:00Z", 1_896_091_200),
            ("1970-01-01", 0),
            ("2024-02-29", 1_709_164_800),
            ("2030-01-31", 1_896_048_000),
            ("2030-01-31T12:00:00z", 1_896_091_200),
            ("2030-01-31 12:00:00Z", 1_896_091_200),
            ("2030-01-31T12:00", 1_896_091_200),
            ("2030-01-31T12:00:00", 1_896_091_200),
            ("2030-01-31T14:00:00+02:00", 1_896_091_200),
            ("2030-01-31T14:00:00+0200", 1_896_091_200),
            ("2030-01-31T14:00:00+02", 1_896_091_200),
            // Once read as +200 hours by the old hand-written parser.
            ("2030-01-31T12:00:00+0200", 1_896_091_200 - 2 * 3600),
            ("2030-01-31T06:30:00-05:30", 1_896_091_200),
            (
                "2030-01-31T12:00:00+23:59",
                1_896_091_200 - (23 * 60 + 59) * 60,
            ),
            ("2030-01-31T12:00:00.250Z", 1_896_091_200),
            ("Thu, 31 Jan 2030 12:00:00 GMT", 1_896_091_200),
            ("Thu, 31 Jan 2030 12:00:00 +0000", 1_896_091_200),
            ("Wed, 23 Jan 2030 04:00:00 GMT", 1_895_371_200),
            ("1896091200", 1_896_091_200),
            ("2030-01-31T12:00:00 UTC", 1_896_091_200),
            ("2030-01-31 12:00:00 GMT", 1_896_091_200),
            ("2030-01-31 14:00:00 +02:00", 1_896_091_200),
            ("20300131T120000Z", 1_896_091_200),
            ("  2030-01-31T12:00:00Z\n", 1_896_091_200),
        ];
        for &(input, want) in valid {
            assert_eq!(parse_expires(input), Ok(want), "input {input:?}");
        }

        // (input, text the message must contain)
        let invalid: &[(&str, &str)] = &[
            ("2030-01-31T12:00:00+25:00", "±23:59"),
            ("2030-01-31T12:00:00+24:00", "±23:59"),
            ("2030-01-31T12:00:00-24:00", "±23:59"),
            ("Thu, 31 Jan 2030 12:00:00 +2500", "±23:59"),
            ("2030-01-31T12:00:00+02:75", "offset"),
            ("2030-01-31T12:00:00+", "offset"),
            ("2030-13-01", "month"),
            ("2023-02-29", "day"),
            ("2030-01-32", "day"),
            ("2030-01-31T25:00", "hour"),
            ("31/01/2030", "2030-01-31T12:00:00Z"),
            ("tomorrow", "2030-01-31T12:00:00Z"),
            ("", "empty"),
            ("   ", "empty"),
            ("2030-01-31T12:00[Europe/Paris]", "annotation"),
        ];
        for &(input, needle) in invalid {
            let err = parse_expires(input).expect_err(input);
            assert!(err.contains(needle), "input {input:?} gave {err:?}");
        }
    }
}
