//! Timestamps as the RealWorld contract wants them: ISO 8601, UTC, milliseconds (`2024-01-01T00:00:00.000Z`).

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

const MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a UTC instant with exactly three fractional digits and a `Z`.
pub fn format_millis(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    // Formatting a valid OffsetDateTime with a static description cannot fail for years 0..=9999.
    utc.format(MILLIS)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// The current instant, truncated to milliseconds so that what is stored is what is shown.
pub fn now_millis() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let nanos = now.nanosecond();
    now.replace_nanosecond(nanos - nanos % 1_000_000)
        .unwrap_or(now)
}

/// Parses an RFC 3339 timestamp.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_with_three_fractional_digits() {
        assert_eq!(
            format_millis(datetime!(2024-01-01 00:00:00 UTC)),
            "2024-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_millis(datetime!(2024-05-06 07:08:09.123456 UTC)),
            "2024-05-06T07:08:09.123Z"
        );
    }

    #[test]
    fn round_trips_through_parse() {
        let at = datetime!(2024-05-06 07:08:09.120 UTC);
        assert_eq!(parse(&format_millis(at)), Some(at));
    }
}
