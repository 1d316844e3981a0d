//! Identifier and time newtypes.

use std::fmt;
use std::str::FromStr;

/// Why a hex string could not be read as an ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// The string held a character outside `0-9a-fA-F`.
    #[error("ID is not hexadecimal: {0:?}")]
    NotHex(String),
    /// The string or byte slice had the wrong length.
    #[error("ID has {got} bytes, expected {expected}")]
    WrongLength {
        /// Length that was given, in bytes.
        got: usize,
        /// Length the ID type requires, in bytes.
        expected: usize,
    },
    /// The ID was all zeroes, which OpenTelemetry defines as invalid.
    #[error("ID is all zeroes, which is invalid")]
    Zero,
}

macro_rules! id_type {
    ($name:ident, $len:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the ID in bytes.
            pub const LEN: usize = $len;

            /// Reads an ID from raw bytes; rejects wrong lengths and the all-zero ID.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdParseError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdParseError::WrongLength {
                    got: bytes.len(),
                    expected: $len,
                })?;
                if arr == [0u8; $len] {
                    return Err(IdParseError::Zero);
                }
                Ok(Self(arr))
            }

            /// Lower-case hex form, as the Jaeger and OTLP/JSON APIs write it.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            /// Parses hex. Shorter strings are left-padded with zeroes, as Jaeger and Zipkin
            /// accept 64-bit trace IDs and IDs with leading zeroes trimmed.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() > $len * 2 || s.is_empty() {
                    return Err(IdParseError::WrongLength {
                        got: s.len().div_ceil(2),
                        expected: $len,
                    });
                }
                let padded = format!("{:0>width$}", s, width = $len * 2);
                let mut out = [0u8; $len];
                hex::decode_to_slice(&padded, &mut out)
                    .map_err(|_| IdParseError::NotHex(s.to_owned()))?;
                if out == [0u8; $len] {
                    return Err(IdParseError::Zero);
                }
                Ok(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

id_type!(TraceId, 16, "A 16-byte W3C trace ID.");
id_type!(SpanId, 8, "An 8-byte span ID.");

/// A point in time as nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct UnixNanos(pub u64);

impl UnixNanos {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(d.as_nanos() as u64)
    }

    /// Microseconds since the epoch, as the Jaeger API counts.
    pub fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// Builds a time from microseconds since the epoch, saturating on overflow.
    pub fn from_micros(us: u64) -> Self {
        Self(us.saturating_mul(1_000))
    }

    /// `self - other` in nanoseconds, or zero when `other` is later.
    pub fn saturating_sub(self, other: UnixNanos) -> u64 {
        self.0.saturating_sub(other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_short_and_full_hex() {
        let t: TraceId = "abc".parse().unwrap();
        assert_eq!(t.to_hex(), "00000000000000000000000000000abc");
        let full = "0123456789abcdef0123456789abcdef";
        assert_eq!(full.parse::<TraceId>().unwrap().to_hex(), full);
        assert_eq!(
            full.to_uppercase().parse::<TraceId>().unwrap().to_hex(),
            full
        );
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(matches!(
            "zz".parse::<SpanId>(),
            Err(IdParseError::NotHex(_))
        ));
        assert!(matches!("0".parse::<SpanId>(), Err(IdParseError::Zero)));
        assert!(matches!(
            "".parse::<SpanId>(),
            Err(IdParseError::WrongLength { .. })
        ));
        assert!(matches!(
            "0123456789abcdef01".parse::<SpanId>(),
            Err(IdParseError::WrongLength { .. })
        ));
        assert!(SpanId::from_bytes(&[1, 2, 3]).is_err());
        assert!(SpanId::from_bytes(&[0; 8]).is_err());
    }

    proptest! {
        #[test]
        fn hex_round_trip(bytes in proptest::array::uniform16(any::<u8>())) {
            prop_assume!(bytes != [0u8; 16]);
            let id = TraceId(bytes);
            prop_assert_eq!(id.to_hex().parse::<TraceId>().unwrap(), id);
            prop_assert_eq!(TraceId::from_bytes(&bytes).unwrap(), id);
        }
    }
}
