//! A byte-level tokenizer: an instruction's UTF-8 bytes (lower-cased), then
//! padding. No vocabulary file; the text encoder learns from the bytes.

/// Token ids: the 256 byte values and the padding token.
pub const VOCAB: usize = 257;
/// The padding token.
pub const PAD: u32 = 256;

/// The tokens of `text`, cut or padded to `len`.
pub fn tokenize(text: &str, len: usize) -> Vec<u32> {
    let mut tokens: Vec<u32> = text
        .trim()
        .to_lowercase()
        .bytes()
        .take(len)
        .map(u32::from)
        .collect();
    tokens.resize(len, PAD);
    tokens
}
