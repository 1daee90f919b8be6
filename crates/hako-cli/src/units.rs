//! Docker's human units: sizes (`4.26MB`, decimal, 3 significant digits), durations
//! (`2 minutes ago`), and RFC 3339 timestamps.

pub use hako_engine::units::{human_duration, now};

/// `docker images` sizes: go-units `HumanSizeWithPrecision(size, 3)` (powers of 1000).
pub fn human_size(bytes: u64) -> String {
    scaled(
        bytes,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
        3,
    )
}

/// go-units `HumanSize` (precision 4), used by `system df`.
pub fn human_size4(bytes: u64) -> String {
    scaled(
        bytes,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
        4,
    )
}

/// go-units `BytesSize` (powers of 1024, precision 4), used for memory in `info`.
pub fn bytes_size(bytes: u64) -> String {
    scaled(
        bytes,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"],
        4,
    )
}

fn scaled(bytes: u64, base: f64, units: &[&str], precision: i32) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", go_g(size, precision), units[i])
}

/// Go's `%.{precision}g` for 0 <= x < 10^precision.
fn go_g(x: f64, precision: i32) -> String {
    if x == 0.0 {
        return "0".into();
    }
    #[allow(clippy::cast_possible_truncation)] // log10 of a small value
    let exp = x.log10().floor() as i32;
    let decimals = usize::try_from((precision - 1 - exp).max(0)).unwrap_or(0);
    let s = format!("{x:.decimals$}");
    if s.parse::<f64>().is_ok_and(|v| v >= 10f64.powi(precision)) {
        return format!("1e+{precision:02}");
    }
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// "2 minutes ago" for a Unix time; "N/A" when unknown.
pub fn since(created: Option<i64>) -> String {
    match created {
        Some(t) => format!(
            "{} ago",
            human_duration(u64::try_from(now() - t).unwrap_or(0))
        ),
        None => "N/A".into(),
    }
}

/// Docker's `CreatedAt`: `2024-01-02 03:04:05 +0000 UTC`.
pub fn created_at(t: i64) -> String {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0).unsigned_abs());
    let rfc = humantime::format_rfc3339_seconds(when).to_string();
    rfc.replacen('T', " ", 1).replacen('Z', " +0000 UTC", 1)
}

/// Go's `time.Time.String()` of an RFC 3339 time (`2024-01-02 03:04:05.123456789 +0000
/// UTC`, the fraction without trailing zeros), as `docker network ls` prints CreatedAt.
pub fn go_time_string(rfc3339: &str) -> String {
    let Some((date, rest)) = rfc3339.split_once('T') else {
        return rfc3339.to_string();
    };
    let rest = rest.trim_end_matches('Z');
    let (clock, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{date} {clock} +0000 UTC")
    } else {
        format!("{date} {clock}.{frac} +0000 UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_strings() {
        assert_eq!(
            go_time_string("2026-12-06T06:56:23.377616650Z"),
            "2026-12-06 06:56:23.37761665 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-12-06T06:56:23Z"),
            "2026-12-06 06:56:23 +0000 UTC"
        );
    }

    #[test]
    fn created_at_like_docker() {
        assert_eq!(created_at(1_600_000_000), "2020-09-13 12:26:40 +0000 UTC");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(4_265_000), "4.26MB"); // 4.265 is 4.26499.. in binary
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(999_999_999), "1e+03MB");
        assert_eq!(human_size(5_000_000_000), "5GB");
        assert_eq!(human_size4(4_261_234), "4.261MB");
        assert_eq!(bytes_size(8_000_000_000), "7.451GiB");
    }
}
