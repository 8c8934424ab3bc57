//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`), held exactly.
//!
//! The grammar is the API server's:
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! signedNumber    ::= [ "+" | "-" ] number
//! number          ::= digits | digits "." digits | digits "." | "." digits
//! suffix          ::= binarySI | decimalSI | decimalExponent
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei            (powers of 1024)
//! decimalSI       ::= m | "" | k | M | G | T | P | E         (powers of 1000)
//! decimalExponent ::= ( "e" | "E" ) [ "+" | "-" ] digits     (powers of 10)
//! ```
//!
//! As in Kubernetes, a value is kept to a precision of one thousandth (`1m`): anything finer is rounded
//! up, away from zero (`0.1m` is `1m`, `0.5` bytes is 1 byte), and whole values are rounded up the same
//! way ([`Quantity::as_value`]). Nothing here is ever a float. Where Kubernetes silently caps a value
//! whose magnitude exceeds 2^63-1, this parser refuses it ([`QuantityError::OutOfRange`]): in a config
//! file such a number is a mistake.
//!
//! Percentages (`10%`) are not quantities; eviction thresholds handle them (`node::allocatable`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest magnitude, in thousandths, that a quantity may hold: (2^63-1) whole units.
const MAX_MILLI: i128 = i64::MAX as i128 * 1000;

/// Errors are cut to this many characters of the offending input.
const MAX_ECHO: usize = 64;

/// How a quantity was written, which decides how it is written back ([`fmt::Display`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `m`, none, `k`, `M`, `G`, `T`, `P`, `E`.
    DecimalSi,
    /// `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`.
    BinarySi,
    /// `e3`, `E-3`, ...
    DecimalExponent,
}

/// An exact resource quantity: an integer number of thousandths plus the format it was written in.
///
/// Equality and ordering compare values only (`1Ki == 1024`).
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    milli: i128,
    format: Format,
}

/// Why a string is not a quantity. The offending input is named in the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity (expected a number such as \"100m\", \"2\" or \"128Mi\")")]
    Empty,
    #[error("invalid quantity {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("quantity {input:?} is out of range: its magnitude must not exceed 2^63-1")]
    OutOfRange { input: String },
}

impl QuantityError {
    fn invalid(input: &str, reason: impl Into<String>) -> Self {
        QuantityError::Invalid { input: echo(input), reason: reason.into() }
    }

    fn out_of_range(input: &str) -> Self {
        QuantityError::OutOfRange { input: echo(input) }
    }
}

/// The input as quoted in an error: at most [`MAX_ECHO`] characters.
fn echo(input: &str) -> String {
    if input.chars().count() <= MAX_ECHO {
        input.to_string()
    } else {
        let mut s: String = input.chars().take(MAX_ECHO).collect();
        s.push('…');
        s
    }
}

impl Quantity {
    /// Parses a quantity such as `100m`, `0.5`, `2`, `128Mi`, `1Gi`, `1G`, `500k` or `1e3`.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        parse(input)
    }

    /// A quantity of `milli` thousandths, written in `format`.
    pub fn from_milli(milli: i64, format: Format) -> Quantity {
        Quantity { milli: milli as i128, format }
    }

    /// A quantity of `value` whole units (bytes, cores, pods), written in `format`.
    pub fn from_value(value: i64, format: Format) -> Quantity {
        Quantity { milli: value as i128 * 1000, format }
    }

    /// The value in thousandths (for CPU: millicores), already rounded up to whole thousandths.
    pub fn as_milli(&self) -> i128 {
        self.milli
    }

    /// The value in whole units, rounded up away from zero as Kubernetes does (`0.5` is 1, `-0.5` is -1).
    pub fn as_value(&self) -> i128 {
        let magnitude = (self.milli.unsigned_abs() as i128 + 999) / 1000;
        if self.milli < 0 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// [`Quantity::as_value`] for quantities of memory or storage.
    pub fn as_bytes(&self) -> i128 {
        self.as_value()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_negative(&self) -> bool {
        self.milli < 0
    }

    pub fn is_zero(&self) -> bool {
        self.milli == 0
    }

    /// True when the value has no fractional part (`1.5` is not whole; `1.5Ki` is).
    pub fn is_whole(&self) -> bool {
        self.milli % 1000 == 0
    }

    /// The quantity as the Kubernetes API type, in canonical form.
    pub fn to_k8s(self) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(self.to_string())
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.milli == other.milli
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.milli.cmp(&other.milli)
    }
}

impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.milli.hash(state);
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Canonical form, as the API server writes it: no fraction, the largest suffix that loses nothing,
/// in the format the quantity was written in (`1.5` is `1500m`, `1.5Gi` is `1536Mi`, `1000m` is `1`).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.format {
            Format::DecimalSi => decimal(self.milli, &DECIMAL_SI_SUFFIXES),
            Format::DecimalExponent => decimal(self.milli, &EXPONENT_SUFFIXES),
            Format::BinarySi => binary(self.milli),
        };
        f.write_str(&s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts a string (`"100m"`) or an integer (`110`); floats are refused because they are not exact.
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string such as \"100m\", \"2\" or \"128Mi\", or an integer")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                parse(v).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_value(v, Format::DecimalSi))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                i64::try_from(v)
                    .map(|v| Quantity::from_value(v, Format::DecimalSi))
                    .map_err(|_| E::custom(QuantityError::out_of_range(&v.to_string())))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Err(E::custom(format!(
                    "quantity {v} is a floating-point number; write it as a string (\"{v}\") so it is exact"
                )))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// Canonical decimal form of `milli` thousandths: `2`, `1500m`, `2k` (what the API server writes for
/// CPU, pod counts and other decimal quantities).
pub fn format_milli(milli: i64) -> String {
    decimal(milli as i128, &DECIMAL_SI_SUFFIXES)
}

/// Canonical binary form of a byte count: `16314012Ki`, `2Mi`, `1536Mi`, `1000` ... (as the kubelet
/// reports memory and storage). Values below 1024 are written in decimal, as Kubernetes does.
pub fn format_bytes(bytes: u64) -> String {
    binary(bytes as i128 * 1000)
}

const DECIMAL_SI_SUFFIXES: [&str; 8] = ["m", "", "k", "M", "G", "T", "P", "E"];
const EXPONENT_SUFFIXES: [&str; 8] = ["e-3", "", "e3", "e6", "e9", "e12", "e15", "e18"];
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// `milli` written with the largest power of 1000 that divides it; `suffixes[k]` names 1000^(k-1).
fn decimal(milli: i128, suffixes: &[&str; 8]) -> String {
    if milli == 0 {
        return "0".to_string();
    }
    let sign = if milli < 0 { "-" } else { "" };
    let mut mantissa = milli.unsigned_abs();
    let mut k = 0;
    while k + 1 < suffixes.len() && mantissa.is_multiple_of(1000) {
        mantissa /= 1000;
        k += 1;
    }
    format!("{sign}{mantissa}{}", suffixes[k])
}

/// `milli` written with the largest power of 1024 that divides it, falling back to decimal for
/// fractions and for magnitudes below 1024 (so that `1000` is not written `0.9765625Ki`).
fn binary(milli: i128) -> String {
    let magnitude = milli.unsigned_abs();
    if !magnitude.is_multiple_of(1000) || magnitude < 1024 * 1000 {
        return decimal(milli, &DECIMAL_SI_SUFFIXES);
    }
    let sign = if milli < 0 { "-" } else { "" };
    let mut mantissa = magnitude / 1000;
    let mut k = 0;
    while k + 1 < BINARY_SUFFIXES.len() && mantissa.is_multiple_of(1024) {
        mantissa /= 1024;
        k += 1;
    }
    format!("{sign}{mantissa}{}", BINARY_SUFFIXES[k])
}

fn parse(input: &str) -> Result<Quantity, QuantityError> {
    if input.is_empty() {
        return Err(QuantityError::Empty);
    }
    let bytes = input.as_bytes();
    let mut pos = 0;
    let negative = match bytes[0] {
        b'-' => {
            pos = 1;
            true
        }
        b'+' => {
            pos = 1;
            false
        }
        _ => false,
    };

    // The number: digits with at most one decimal point.
    let mut digits: Vec<u8> = Vec::new();
    let mut fraction_len: i64 = 0;
    let mut seen_point = false;
    while pos < bytes.len() {
        match bytes[pos] {
            b @ b'0'..=b'9' => {
                digits.push(b - b'0');
                if seen_point {
                    fraction_len += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'.' => return Err(QuantityError::invalid(input, "more than one decimal point")),
            _ => break,
        }
        pos += 1;
    }
    if digits.is_empty() {
        return Err(QuantityError::invalid(
            input,
            "expected a number, optionally signed, such as \"100m\", \"1.5\" or \"128Mi\"",
        ));
    }

    // The suffix: everything after the number. All bytes before `pos` are ASCII, so it is a char boundary.
    let suffix = &input[pos..];
    let (format, exp10, pow1024) = match suffix {
        "" => (Format::DecimalSi, 0, 0),
        "m" => (Format::DecimalSi, -3, 0),
        "k" => (Format::DecimalSi, 3, 0),
        "M" => (Format::DecimalSi, 6, 0),
        "G" => (Format::DecimalSi, 9, 0),
        "T" => (Format::DecimalSi, 12, 0),
        "P" => (Format::DecimalSi, 15, 0),
        "E" => (Format::DecimalSi, 18, 0),
        "Ki" => (Format::BinarySi, 0, 1),
        "Mi" => (Format::BinarySi, 0, 2),
        "Gi" => (Format::BinarySi, 0, 3),
        "Ti" => (Format::BinarySi, 0, 4),
        "Pi" => (Format::BinarySi, 0, 5),
        "Ei" => (Format::BinarySi, 0, 6),
        _ if suffix.starts_with(['e', 'E']) => (Format::DecimalExponent, parse_exponent(input, &suffix[1..])?, 0),
        _ => {
            return Err(QuantityError::invalid(
                input,
                format!(
                    "unknown suffix {suffix:?} (expected m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, \
                     or an exponent such as e3)"
                ),
            ))
        }
    };

    // Value in thousandths = digits × 1024^pow1024 × 10^shift.
    let first_nonzero = digits.iter().position(|&d| d != 0);
    let Some(first_nonzero) = first_nonzero else {
        return Ok(Quantity { milli: 0, format });
    };
    let mut digits = digits.split_off(first_nonzero);
    for _ in 0..pow1024 {
        multiply(&mut digits, 1024);
    }
    let shift = exp10.saturating_sub(fraction_len).saturating_add(3);

    // 26 digits is comfortably more than MAX_MILLI (22 digits) and fits an i128.
    const MAX_DIGITS: i64 = 26;
    let len = digits.len() as i64;
    let magnitude: i128 = if shift >= 0 {
        if len.saturating_add(shift) > MAX_DIGITS {
            return Err(QuantityError::out_of_range(input));
        }
        let mut m = to_i128(&digits);
        for _ in 0..shift {
            m *= 10;
        }
        m
    } else {
        // Keep the integer part and round up if anything non-zero is cut off.
        let keep = len.saturating_add(shift).max(0);
        if keep > MAX_DIGITS {
            return Err(QuantityError::out_of_range(input));
        }
        let (whole, rest) = digits.split_at(keep as usize);
        to_i128(whole) + i128::from(rest.iter().any(|&d| d != 0))
    };
    if magnitude > MAX_MILLI {
        return Err(QuantityError::out_of_range(input));
    }
    Ok(Quantity { milli: if negative { -magnitude } else { magnitude }, format })
}

/// The exponent of a decimal-exponent suffix (`3` in `1e3`); clamped far beyond any usable range so
/// that huge exponents overflow (or round) instead of failing to parse.
fn parse_exponent(input: &str, text: &str) -> Result<i64, QuantityError> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::invalid(
            input,
            format!(
                "unknown suffix {:?} (an exponent must be an integer, such as e3 or e-3)",
                &input[input.len() - text.len() - 1..]
            ),
        ));
    }
    let mut value: i64 = 0;
    for b in body.bytes() {
        value = (value * 10 + i64::from(b - b'0')).min(1_000_000);
    }
    Ok(if negative { -value } else { value })
}

/// Multiplies a big-endian decimal digit string in place.
fn multiply(digits: &mut Vec<u8>, factor: u32) {
    let mut carry: u32 = 0;
    for d in digits.iter_mut().rev() {
        let v = u32::from(*d) * factor + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

/// A big-endian decimal digit string known to fit.
fn to_i128(digits: &[u8]) -> i128 {
    digits.iter().fold(0i128, |acc, &d| acc * 10 + i128::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_cpu_quantities() {
        assert_eq!(q("100m").as_milli(), 100);
        assert_eq!(q("0.5").as_milli(), 500);
        assert_eq!(q("2").as_milli(), 2000);
        assert_eq!(q("1.5").as_milli(), 1500);
        assert_eq!(q(".5").as_milli(), 500);
        assert_eq!(q("5.").as_milli(), 5000);
        assert_eq!(q("+3").as_milli(), 3000);
        assert_eq!(q("-250m").as_milli(), -250);
        assert_eq!(q("0").as_milli(), 0);
        assert_eq!(q("-0").as_milli(), 0);
        assert_eq!(q("000100m").as_milli(), 100);
    }

    #[test]
    fn parses_memory_quantities() {
        assert_eq!(q("128Mi").as_bytes(), 128 << 20);
        assert_eq!(q("1Gi").as_bytes(), 1 << 30);
        assert_eq!(q("1G").as_bytes(), 1_000_000_000);
        assert_eq!(q("500k").as_bytes(), 500_000);
        assert_eq!(q("1e3").as_bytes(), 1000);
        assert_eq!(q("1E3").as_bytes(), 1000);
        assert_eq!(q("1e+3").as_bytes(), 1000);
        assert_eq!(q("1E").as_bytes(), 1_000_000_000_000_000_000);
        assert_eq!(q("1.5Gi").as_bytes(), 1536 << 20);
        assert_eq!(q("0.5Ki").as_bytes(), 512);
    }

    #[test]
    fn rounds_up_like_kubernetes() {
        // Finer than a thousandth rounds up to 1m; whole values round up away from zero.
        assert_eq!(q("0.1m").as_milli(), 1);
        assert_eq!(q("1e-9").as_milli(), 1);
        assert_eq!(q("1e-1000000000").as_milli(), 1);
        assert_eq!(q("-0.1m").as_milli(), -1);
        assert_eq!(q("0.5").as_value(), 1);
        assert_eq!(q("1500m").as_value(), 2);
        assert_eq!(q("-1500m").as_value(), -2);
        assert_eq!(q("1001m").as_value(), 2);
        assert_eq!(q("1000m").as_value(), 1);
        assert_eq!(q("0.0000001Ki").as_milli(), 1);
        assert_eq!(q("0.001Ki").as_milli(), 1024);
    }

    #[test]
    fn limits() {
        assert_eq!(q("9223372036854775807").as_value(), i64::MAX as i128);
        assert!(matches!(Quantity::parse("9223372036854775808"), Err(QuantityError::OutOfRange { .. })));
        assert!(matches!(Quantity::parse("8Ei"), Err(QuantityError::OutOfRange { .. })));
        assert_eq!(q("7Ei").as_value(), 7 << 60);
        assert!(matches!(Quantity::parse("1e19"), Err(QuantityError::OutOfRange { .. })));
        assert!(matches!(Quantity::parse("1e999999999999999999999"), Err(QuantityError::OutOfRange { .. })));
        assert_eq!(q("0e999999999999").as_value(), 0);
        assert_eq!(q("-9223372036854775807").as_value(), -(i64::MAX as i128));
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        for bad in [
            "", " ", "1 ", " 1", "abc", "1.2.3", ".", "-", "+", "1K", "1mi", "1Kib", "1%", "10 %", "1e", "1e+",
            "1e1.5", "1ee3", "--1", "+-1", "1,000", "0x10", "1_000", "Mi", "1Mi1", "１", "1µ", "NaN", "inf",
        ] {
            let err = Quantity::parse(bad).expect_err(bad);
            let message = err.to_string();
            if !bad.is_empty() {
                assert!(message.contains(&format!("{bad:?}")), "{bad:?}: {message}");
            }
        }
        let err = Quantity::parse("12Qi").unwrap_err();
        assert!(err.to_string().contains("unknown suffix \"Qi\""), "{err}");
        let long = "x".repeat(1000);
        assert!(Quantity::parse(&long).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_milli(2000), "2");
        assert_eq!(format_milli(1500), "1500m");
        assert_eq!(format_milli(100), "100m");
        assert_eq!(format_milli(0), "0");
        assert_eq!(format_milli(110_000), "110");
        assert_eq!(format_milli(2_000_000), "2k");
        assert_eq!(format_milli(-500), "-500m");
        assert_eq!(format_bytes(16_705_548_288), "16314012Ki");
        assert_eq!(format_bytes(2 << 20), "2Mi");
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(1000), "1k");
        assert_eq!(format_bytes(512), "512");
        assert_eq!(format_bytes(1025), "1025");
        assert_eq!(format_bytes(93_478_772_582), "93478772582");
        assert_eq!(format_bytes(u64::MAX), "18446744073709551615");

        assert_eq!(q("1.5").to_string(), "1500m");
        assert_eq!(q("1.5Gi").to_string(), "1536Mi");
        assert_eq!(q("1000m").to_string(), "1");
        assert_eq!(q("1e3").to_string(), "1e3");
        assert_eq!(q("1.5e3").to_string(), "1500");
        assert_eq!(q("0.001e3").to_string(), "1");
        assert_eq!(q("1e-3").to_string(), "1e-3");
        assert_eq!(q("0.5Ki").to_string(), "512");
        assert_eq!(q("1Ki").to_string(), "1Ki");
        assert_eq!(q("1024Ki").to_string(), "1Mi");
        assert_eq!(q("0.5m").to_string(), "1m");
        assert_eq!(q("128Mi").to_k8s().0, "128Mi");
    }

    #[test]
    fn compares_values() {
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("100m") < q("0.2"));
    }

    #[test]
    fn serde_accepts_strings_and_integers() {
        let v: Vec<Quantity> = serde_json::from_str(r#"["100m", 110, "1Gi"]"#).unwrap();
        assert_eq!(v, vec![q("100m"), q("110"), q("1Gi")]);
        let err = serde_json::from_str::<Quantity>("1.5").unwrap_err().to_string();
        assert!(err.contains("floating-point"), "{err}");
        let err = serde_json::from_str::<Quantity>(r#""12Qi""#).unwrap_err().to_string();
        assert!(err.contains("12Qi"), "{err}");
        assert_eq!(serde_json::to_string(&q("1.5Gi")).unwrap(), r#""1536Mi""#);
    }

    /// No string makes the parser panic, and whatever parses survives a round trip through its
    /// canonical form.
    #[test]
    fn fuzz_never_panics_and_round_trips() {
        const ALPHABET: &[&str] = &[
            "0",
            "1",
            "2",
            "5",
            "9",
            ".",
            "-",
            "+",
            "e",
            "E",
            "m",
            "k",
            "M",
            "G",
            "T",
            "P",
            "Ki",
            "Mi",
            "Gi",
            "Ti",
            "Pi",
            "Ei",
            "i",
            "%",
            " ",
            "é",
            "µ",
            "０",
            "00000000000000",
            "99999999999",
            "\u{0}",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let len = (next() % 8) as usize;
            let s: String = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
            if let Ok(parsed) = Quantity::parse(&s) {
                let text = parsed.to_string();
                let again = Quantity::parse(&text).unwrap_or_else(|e| panic!("{s:?} -> {text:?}: {e}"));
                assert_eq!(again.as_milli(), parsed.as_milli(), "{s:?} -> {text:?}");
            }
        }
    }
}
