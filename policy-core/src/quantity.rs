//! Kubernetes resource quantities (`500m`, `2`, `1.5`, `128Mi`, `1G`, `1e9`), parsed exactly.

use std::fmt;

/// A quantity that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {text:?}: {reason}")]
pub struct QuantityError {
    /// The text given.
    pub text: String,
    /// Why it is not a quantity.
    pub reason: &'static str,
}

/// A non-negative quantity as an exact fraction `numerator / 10^scale`, multiplied by a suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    numerator: u128,
    /// The value is `numerator * multiplier / divisor`.
    multiplier: u128,
    divisor: u128,
}

impl Exact {
    /// `self * unit`, rounded up to a whole number.
    fn in_units(self, unit: u128) -> Option<u64> {
        let top = self
            .numerator
            .checked_mul(self.multiplier)?
            .checked_mul(unit)?;
        u64::try_from(top.div_ceil(self.divisor)).ok()
    }
}

fn parse_exact(text: &str) -> Result<Exact, QuantityError> {
    let err = |reason| QuantityError {
        text: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(err("empty"));
    }
    if trimmed.starts_with('-') {
        return Err(err("negative quantities are not allowed"));
    }
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(err("no digits"));
    }
    if frac.len() > 18 || int.len() > 20 {
        return Err(err("too many digits"));
    }
    let digits: String = [int, frac].concat();
    let numerator: u128 = digits.parse().map_err(|_| err("not a number"))?;
    let mut divisor: u128 = 10u128.pow(frac.len() as u32);
    let mut multiplier: u128 = 1;
    match suffix {
        "" => {}
        "n" => divisor *= 1_000_000_000,
        "u" => divisor *= 1_000_000,
        "m" => divisor *= 1_000,
        "k" => multiplier = 1_000,
        "M" => multiplier = 1_000_000,
        "G" => multiplier = 1_000_000_000,
        "T" => multiplier = 1_000_000_000_000,
        "P" => multiplier = 1_000_000_000_000_000,
        "E" => multiplier = 1_000_000_000_000_000_000,
        "Ki" => multiplier = 1 << 10,
        "Mi" => multiplier = 1 << 20,
        "Gi" => multiplier = 1 << 30,
        "Ti" => multiplier = 1 << 40,
        "Pi" => multiplier = 1 << 50,
        "Ei" => multiplier = 1 << 60,
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| err("bad exponent"))?;
            if exp.unsigned_abs() > 30 {
                return Err(err("exponent out of range"));
            }
            if exp >= 0 {
                multiplier = 10u128.pow(exp as u32);
            } else {
                divisor *= 10u128.pow(exp.unsigned_abs());
            }
        }
        _ => {
            return Err(err(
                "unknown suffix (expected one of n u m k M G T P E Ki Mi Gi Ti Pi Ei)",
            ));
        }
    }
    Ok(Exact {
        numerator,
        multiplier,
        divisor,
    })
}

/// A CPU amount in millicores (`1` = 1000, `250m` = 250), rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millicores(pub u64);

impl Millicores {
    /// Parses a Kubernetes CPU quantity.
    ///
    /// # Errors
    /// When the text is not a non-negative Kubernetes quantity.
    ///
    /// ```
    /// use policy_core::quantity::Millicores;
    /// assert_eq!(Millicores::parse("250m").unwrap(), Millicores(250));
    /// assert_eq!(Millicores::parse("1.5").unwrap(), Millicores(1500));
    /// ```
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        parse_exact(text)?
            .in_units(1000)
            .map(Millicores)
            .ok_or(QuantityError {
                text: text.to_string(),
                reason: "too large",
            })
    }
}

impl fmt::Display for Millicores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// A memory amount in bytes, rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses a Kubernetes memory quantity.
    ///
    /// # Errors
    /// When the text is not a non-negative Kubernetes quantity.
    ///
    /// ```
    /// use policy_core::quantity::Bytes;
    /// assert_eq!(Bytes::parse("128Mi").unwrap(), Bytes(128 << 20));
    /// assert_eq!(Bytes::parse("1G").unwrap(), Bytes(1_000_000_000));
    /// ```
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        parse_exact(text)?
            .in_units(1)
            .map(Bytes)
            .ok_or(QuantityError {
                text: text.to_string(),
                reason: "too large",
            })
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "Ti"),
            (1 << 30, "Gi"),
            (1 << 20, "Mi"),
            (1 << 10, "Ki"),
        ];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_quantities() {
        for (text, millis) in [
            ("1", 1000),
            ("500m", 500),
            ("0.1", 100),
            ("2.5", 2500),
            ("100000u", 100),
            ("1e3", 1_000_000),
            ("1n", 1),
            ("+2", 2000),
        ] {
            assert_eq!(
                Millicores::parse(text).unwrap(),
                Millicores(millis),
                "{text}"
            );
        }
    }

    #[test]
    fn parses_memory_quantities() {
        for (text, bytes) in [
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("1000", 1000),
            ("1.5Ki", 1536),
            ("1e6", 1_000_000),
            ("500m", 1),
        ] {
            assert_eq!(Bytes::parse(text).unwrap(), Bytes(bytes), "{text}");
        }
    }

    #[test]
    fn rejects_bad_quantities() {
        for text in ["", "-1", "1x", "abc", "1.2.3", "Mi", "1e99", "."] {
            assert!(Bytes::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn displays_readably() {
        assert_eq!(Millicores(2000).to_string(), "2");
        assert_eq!(Millicores(250).to_string(), "250m");
        assert_eq!(Bytes(256 << 20).to_string(), "256Mi");
        assert_eq!(Bytes(1000).to_string(), "1000");
    }
}
