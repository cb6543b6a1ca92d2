//! Unpadded base64 as Matrix uses it.
//!
//! Matrix writes base64 without padding: the standard alphabet for hashes, signatures and keys, the
//! URL-safe alphabet for event IDs from room version 4 on. "When decoding Base64, implementations
//! SHOULD accept input with or without padding characters", so the decoders here accept both, and
//! nothing else: no whitespace, no characters from the other alphabet. Non-zero trailing bits are
//! tolerated, as Python's decoder (and so Synapse) tolerates them.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const ENCODE_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new().with_encode_padding(false);
const DECODE_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    // The spec's own test seed (`...XA1`) has non-zero trailing bits; Python and Synapse accept it.
    .with_decode_allow_trailing_bits(true);

const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ENCODE_CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ENCODE_CONFIG);
const STANDARD_DECODE: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, DECODE_CONFIG);
const URL_SAFE_DECODE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, DECODE_CONFIG);

/// Unpadded standard base64 (`+`, `/`), as for hashes, signatures and keys.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Unpadded URL-safe base64 (`-`, `_`), as for event IDs in room versions 4 and later.
pub fn encode_url_safe(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// Decodes standard base64, with or without padding. `None` for anything else.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD_DECODE.decode(text).ok()
}

/// Decodes URL-safe base64, with or without padding. `None` for anything else.
pub fn decode_url_safe(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_DECODE.decode(text).ok()
}

/// Decodes standard base64 into exactly `N` bytes, e.g. a 32-byte key or a 64-byte signature.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Longer input cannot decode to N bytes; refusing it first keeps hostile input cheap.
    if text.len() > N.div_ceil(3) * 4 {
        return None;
    }
    decode(text)?.try_into().ok()
}
