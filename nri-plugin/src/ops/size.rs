//! Sizes in bytes as people write them in flags (`100MiB`, `4 MB`) and read them in messages.

/// A size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not a whole number followed by a known unit.
    #[error(
        "{0:?} is not a size: expected a whole number of bytes, optionally followed by B, KB, \
         MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
    )]
    Invalid(String),
    /// Over `u64::MAX` bytes.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a size in bytes: `1048576`, `100MiB`, `1 GB` (units are case-insensitive:
/// `KB`, `MB`, `GB`, `TB` are powers of 1000, `KiB`, `MiB`, `GiB`, `TiB` powers of 1024).
///
/// ```
/// assert_eq!(nodeguard::ops::size::parse_size("100MiB"), Ok(100 * 1024 * 1024));
/// ```
///
/// # Errors
/// When `text` is not such a size or does not fit in a `u64`.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(SizeError::Invalid(text.to_string()));
    }
    let unit: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(SizeError::Invalid(text.to_string())),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

/// A size as a person reads it: `4 MiB`, `512 KiB`, `100 MB`, or bytes when no unit divides it.
///
/// ```
/// assert_eq!(nodeguard::ops::size::format_size(4 << 20), "4 MiB");
/// assert_eq!(nodeguard::ops::size::format_size(1500), "1500 bytes");
/// ```
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 8] = [
        (1 << 40, "TiB"),
        (1_000_000_000_000, "TB"),
        (1 << 30, "GiB"),
        (1_000_000_000, "GB"),
        (1 << 20, "MiB"),
        (1_000_000, "MB"),
        (1 << 10, "KiB"),
        (1000, "KB"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| bytes >= *unit && bytes.is_multiple_of(*unit))
        .map_or_else(
            || format!("{bytes} bytes"),
            |(unit, name)| format!("{} {name}", bytes / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("100mib"), Ok(100 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("5KB"), Ok(5000));
        assert_eq!(parse_size("7b"), Ok(7));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
    }

    #[test]
    fn sizes_that_are_not_refuse_with_the_text() {
        for bad in ["", "MiB", "-1", "1.5MiB", "10 parsecs", "1 M", "0x10"] {
            assert_eq!(
                parse_size(bad),
                Err(SizeError::Invalid(bad.to_string())),
                "{bad:?}"
            );
        }
        for huge in ["18446744073709551616", "17179869184GiB"] {
            assert_eq!(parse_size(huge), Err(SizeError::TooLarge(huge.to_string())));
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn sizes_format_in_the_largest_unit_that_divides_them() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(4 << 20), "4 MiB");
        assert_eq!(format_size(5000), "5 KB");
        assert_eq!(format_size(3 << 30), "3 GiB");
        assert_eq!(format_size(1025), "1025 bytes");
        for text in ["4 MiB", "5 KB", "3 GiB", "1025 bytes"] {
            let n = parse_size(text.trim_end_matches(" bytes")).unwrap();
            assert_eq!(format_size(n), text);
        }
    }
}
